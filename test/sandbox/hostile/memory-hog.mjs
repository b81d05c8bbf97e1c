// HOSTILE TEST PROGRAM: allocates (and touches) memory in 16 MiB steps up to argv[2] MiB, printing
// progress, then "done". Over the sandbox's memory limit, the whole sandbox must be killed, not the host.
const targetMiB = Number(process.argv[2] ?? 4096);
const held = [];
for (let mib = 16; mib <= targetMiB; mib += 16) {
  held.push(Buffer.alloc(16 * 1024 * 1024, mib & 0xff));
  if (mib % 64 === 0) process.stdout.write(`allocated ${mib} MiB\n`);
}
process.stdout.write(`done ${held.length * 16} MiB\n`);
