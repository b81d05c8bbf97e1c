// HOSTILE TEST PROGRAM: AI code that tries to get out of the gVisor sandbox. test/sandbox/escape.test.ts
// runs it inside the sandbox (through `obscura sandbox exec` and through the worker's Sandbox class)
// and checks that every attempt failed, from inside (this report) and from the host (its listeners,
// its disk). Each attempt is one entry: { escaped, detail }; `escaped` is true when the attempt got
// somewhere it must not (a connection, a reply, a host file, a host process...).
//
//   node probe.mjs attack CONFIG_JSON        all attempts, then the report as one JSON line on stdout
//   node probe.mjs second-run CONFIG_JSON    looks for the markers a first run left; echoes stdin's
//                                             SHA-256; exits with config.exitCode
//   node probe.mjs serve CONFIG_JSON         the worker's way: listens on $OBSCURA_LISTEN first, runs the
//                                             attempts, prints a canary on stdout/stderr, serves the report
//                                             at GET /report
//
// CONFIG_JSON: { tcp4Port, tcp6Port, udp4Port, udp6Port, unixSockets: [path], abstractName, secretFiles: [path],
//   projectRoot, hostPid, marker, writeTargets: [dir], envSecret, canarySeed, exitCode, tmpfsBytes }
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';

const [mode, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson ?? '{}');
const ATTEMPT_TIMEOUT_MS = 400;

/** Where a first run tries to leave a file behind (the test passes the list). */
const WRITE_TARGETS = config.writeTargets ?? [];

const errCode = (e) => e?.code ?? e?.message ?? String(e);

function tcp(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (escaped, detail) => {
      s.destroy();
      resolve({ escaped, detail });
    };
    s.setTimeout(ATTEMPT_TIMEOUT_MS, () => done(false, 'timeout'));
    s.once('connect', () => s.write('escaped over tcp\n', () => setTimeout(() => done(true, 'connected and wrote'), 50)));
    s.once('error', (e) => done(false, errCode(e)));
  });
}

function unix(path) {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    const done = (escaped, detail) => {
      s.destroy();
      resolve({ escaped, detail });
    };
    s.setTimeout(ATTEMPT_TIMEOUT_MS, () => done(false, 'timeout'));
    s.once('connect', () => s.write('escaped over unix\n', () => setTimeout(() => done(true, 'connected and wrote'), 50)));
    s.once('error', (e) => done(false, errCode(e)));
  });
}

/** A datagram to the host's echo listener: escaped only when an echo comes back. */
function udp(type, host, port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(type);
    let sendError;
    const timer = setTimeout(() => {
      s.close();
      resolve({ escaped: false, detail: sendError ?? 'no reply' });
    }, ATTEMPT_TIMEOUT_MS);
    s.once('message', () => {
      clearTimeout(timer);
      s.close();
      resolve({ escaped: true, detail: 'echo received' });
    });
    s.on('error', (e) => (sendError = errCode(e)));
    s.send('escaped over udp\n', port, host, (e) => {
      if (e) sendError = errCode(e);
    });
  });
}

async function resolveWith(servers, name) {
  const r = new dns.promises.Resolver({ timeout: ATTEMPT_TIMEOUT_MS, tries: 1 });
  if (servers) r.setServers(servers);
  try {
    const a = await r.resolve4(name);
    return { escaped: true, detail: a.join(',') };
  } catch (e) {
    return { escaped: false, detail: errCode(e) };
  }
}

function readAttempt(path) {
  try {
    const bytes = readFileSync(path);
    return { escaped: true, detail: `read ${bytes.length} bytes` };
  } catch (e) {
    return { escaped: false, detail: errCode(e) };
  }
}

function run(file, args) {
  try {
    return { ok: true, out: execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5_000 }).trim() };
  } catch (e) {
    return { ok: false, out: `${e.status ?? ''} ${(e.stderr ?? '').toString().trim() || errCode(e)}`.trim() };
  }
}

function statusField(name) {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  return line?.split(':')[1].trim();
}

async function attack() {
  const report = {};
  const a = (name, result) => (report[name] = result);

  // Network (concurrently: each failure may be a timeout): the host's loopback listeners, its DNS,
  // its interfaces; host unix sockets by path (temp dir, /run, /tmp, /var/run) and an abstract one.
  const network = {
    'tcp-127.0.0.1': tcp('127.0.0.1', config.tcp4Port),
    'tcp-[::1]': tcp('::1', config.tcp6Port),
    'udp-127.0.0.1': udp('udp4', '127.0.0.1', config.udp4Port),
    'udp-[::1]': udp('udp6', '::1', config.udp6Port),
    'dns-lookup': dns.promises.lookup('example.com').then((r) => ({ escaped: true, detail: r.address }), (e) => ({ escaped: false, detail: errCode(e) })),
    'dns-resolve-default': resolveWith(undefined, 'example.com'),
    'dns-resolve-host-udp': resolveWith([`127.0.0.1:${config.udp4Port}`], 'example.com'),
    'unix-abstract': unix(`\0${config.abstractName}`),
  };
  for (const path of config.unixSockets ?? []) network[`unix-${path}`] = unix(path);
  for (const [name, result] of Object.entries(network)) a(name, await result);
  const ifaces = Object.keys(os.networkInterfaces());
  const procNet = readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean);
  const sysNet = existsSync('/sys/class/net') ? readdirSync('/sys/class/net') : [];
  const names = [...new Set([...ifaces, ...procNet, ...sysNet])];
  a('interfaces', { escaped: names.some((n) => n !== 'lo'), detail: names.join(',') });

  // Files that would outlive the sandbox (the host and a second run check; /tmp is in memory).
  const written = [];
  for (const dir of WRITE_TARGETS) {
    const path = `${dir === '/' ? '' : dir}/${config.marker}`;
    try {
      writeFileSync(path, `marker ${config.marker}\n`);
      written.push(dir);
    } catch (e) {
      a(`write-${dir}`, { escaped: false, detail: errCode(e) });
      continue;
    }
    a(`write-${dir}`, { escaped: dir !== '/tmp', detail: 'written' });
  }
  try {
    writeFileSync(`/tmp/${config.marker}.big`, Buffer.alloc(config.tmpfsBytes + 1024 * 1024));
    a('tmp-over-size', { escaped: true, detail: 'wrote more than the tmpfs size' });
  } catch (e) {
    a('tmp-over-size', { escaped: false, detail: errCode(e) });
  }

  // Host secrets.
  a('read-/etc/shadow', readAttempt('/etc/shadow'));
  a('read-/proc/1/root/etc/shadow', readAttempt('/proc/1/root/etc/shadow'));
  for (const path of config.secretFiles ?? []) a(`read-${path}`, readAttempt(path));
  a('read-project', readAttempt(`${config.projectRoot}/package.json`));
  a('list-project', existsSync(config.projectRoot) ? { escaped: true, detail: 'exists' } : { escaped: false, detail: 'ENOENT' });
  const passwd = readFileSync('/etc/passwd', 'utf8');
  a('etc-passwd-generated', { escaped: passwd.split('\n').filter(Boolean).length !== 2 || !passwd.includes('aicode:x:65532:65532'), detail: passwd });

  // Processes: only the sandbox's own.
  const pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  const cmdlines = pids.map((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      return '';
    }
  });
  a('proc-list', { escaped: pids.includes(config.hostPid) || pids.length > 10, detail: pids.map((p, i) => `${p}:${cmdlines[i]}`).join(' | ') });
  let killResult;
  try {
    process.kill(config.hostPid, 0);
    killResult = { escaped: !pids.includes(config.hostPid), detail: 'signal delivered' };
  } catch (e) {
    killResult = { escaped: false, detail: errCode(e) };
  }
  a('signal-host-pid', killResult);
  a('read-host-pid-environ', readAttempt(`/proc/${config.hostPid}/environ`));

  // Identity and privilege.
  const ids = { uid: process.getuid(), euid: process.geteuid(), gid: process.getgid(), egid: process.getegid(), groups: process.getgroups() };
  a('uid', { escaped: ids.uid !== 65532 || ids.euid !== 65532 || ids.gid !== 65532 || ids.egid !== 65532 || ids.groups.some((g) => g !== 65532), detail: JSON.stringify(ids) });
  for (const [name, fn] of [['setuid-0', () => process.setuid(0)], ['setgid-0', () => process.setgid(0)], ['seteuid-0', () => process.seteuid(0)]]) {
    try {
      fn();
      a(name, { escaped: true, detail: `now uid ${process.getuid()} euid ${process.geteuid()}` });
    } catch (e) {
      a(name, { escaped: false, detail: errCode(e) });
    }
  }
  // gVisor's /proc/self/status has no CapAmb or NoNewPrivs lines.
  const caps = Object.fromEntries(['CapInh', 'CapPrm', 'CapEff', 'CapBnd'].map((k) => [k, statusField(k)]));
  a('capabilities', { escaped: Object.values(caps).some((v) => !/^0+$/.test(v ?? 'missing')), detail: JSON.stringify(caps) });
  const userns = run('/usr/bin/unshare', ['-Ur', '/usr/bin/id', '-u']);
  a('userns-root', { escaped: userns.ok, detail: userns.out });
  const mount = run('/usr/bin/mount', ['-t', 'tmpfs', 'tmpfs', '/tmp']);
  a('mount', { escaped: mount.ok, detail: mount.out });

  // The environment: nothing from the host's (the test puts a secret in obscura's own environment).
  const environ = readFileSync('/proc/self/environ', 'utf8');
  a('host-env', { escaped: environ.includes(config.envSecret) || Object.values(process.env).some((v) => v?.includes(config.envSecret)), detail: Object.keys(process.env).sort().join(',') });

  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-');
    return { mountPoint: f[4], options: f[5], fsType: f[sep + 1] };
  });
  return { attempts: report, written, mounts, pid: process.pid };
}

function listen(path) {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

function canary() {
  return `CANARY-${[...String(config.canarySeed)].reverse().join('')}`;
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks);
}

if (mode === 'attack') {
  // Like AI code: the socket first (the channel then has room for nothing else), then the attempts.
  const server = await listen(process.env.OBSCURA_LISTEN);
  const result = await attack();
  server.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else if (mode === 'second-run') {
  const found = {};
  for (const dir of WRITE_TARGETS) {
    const path = `${dir === '/' ? '' : dir}/${config.marker}`;
    if (existsSync(path)) found[dir] = true;
  }
  const stdin = await readStdin();
  process.stdout.write(`${JSON.stringify({ found, stdinSha256: createHash('sha256').update(stdin).digest('hex'), stdinBytes: stdin.length })}\n`);
  process.stderr.write('second run on stderr\n');
  process.exitCode = config.exitCode;
} else if (mode === 'serve') {
  const weights = await readStdin(); // the worker hands weights over stdin, then EOF
  const server = await listen(process.env.OBSCURA_LISTEN);
  const line = `${canary()} weights ${weights.length} bytes`;
  process.stdout.write(`${line}\n`);
  process.stderr.write(`${line}\n`);
  const ticker = setInterval(() => {
    process.stdout.write(`${line}\n`);
    process.stderr.write(`${line}\n`);
  }, 100);
  ticker.unref();
  const result = attack();
  server.on('request', async (req, res) => {
    if (req.url === '/report') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ...(await result), weightsSha256: createHash('sha256').update(weights).digest('hex') }));
    } else if (req.url === '/channel') {
      res.end(JSON.stringify({ entries: readdirSync('/run/obscura') }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exitCode = 64;
}

