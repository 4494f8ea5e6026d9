// Progress lines on stderr, so stdout keeps only the result table and the result path.
const t0 = Date.now();
export function say(msg: string): void {
  process.stderr.write(`bench +${((Date.now() - t0) / 1000).toFixed(1)}s: ${msg}\n`);
}
