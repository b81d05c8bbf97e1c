// Builds the sample model: word trigram counts from corpus.txt (public-domain text: Carroll, Austen,
// Dickens, Melville), written as JSON. A SAMPLE: real AI code is any OpenAI-compatible server image.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export function tokenize(text) {
  return text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?|[.,;:!?]/g) ?? [];
}

export function buildModel(corpus) {
  const words = tokenize(corpus);
  const trigrams = {};
  for (let i = 0; i + 2 < words.length; i++) {
    const key = `${words[i]} ${words[i + 1]}`;
    const next = (trigrams[key] ??= {});
    next[words[i + 2]] = (next[words[i + 2]] ?? 0) + 1;
  }
  const vocab = [...new Set(words)].sort();
  return { format: 'obscura-sample-ngram/1', order: 3, vocab, trigrams };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: build-model.mjs OUT.json');
    process.exit(1);
  }
  const corpus = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'corpus.txt'), 'utf8');
  writeFileSync(out, JSON.stringify(buildModel(corpus)));
}
