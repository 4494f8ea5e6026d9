// Bounded concurrency: setup and checks that make many requests (customers, items,
// sessions to compare) without opening one socket per input.

/** Runs fn over inputs with at most `concurrency` in flight; results keep input order. */
export async function pool<I, O>(inputs: readonly I[], concurrency: number, fn: (input: I, index: number) => Promise<O>): Promise<O[]> {
  const out = new Array<O>(inputs.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, inputs.length)) }, async () => {
    while (next < inputs.length) {
      const i = next++;
      out[i] = await fn(inputs[i]!, i);
    }
  });
  await Promise.all(lanes);
  return out;
}
