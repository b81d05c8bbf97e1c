/** Reading an OpenAI-style SSE answer (already opened by the SDK): the `data:` payload of each event, as it arrives. */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  const dataOf = (event: string) =>
    event
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let m: RegExpExecArray | null;
      while ((m = /\r?\n\r?\n/.exec(pending))) {
        const data = dataOf(pending.slice(0, m.index));
        pending = pending.slice(m.index + m[0].length);
        if (data) yield data;
      }
    }
    const rest = dataOf(pending + decoder.decode());
    if (rest) yield rest;
  } finally {
    reader.releaseLock();
  }
}
