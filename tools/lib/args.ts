// The one command-line parser of every CLI here (tools/, bench/): node:util parseArgs,
// strict, so `--k v` and `--k=v` mean the same everywhere, an unknown option or a
// missing value is refused, and a value starting with a dash must be written `--k=-1`.
// Each CLI keeps its own checks of the values, its help text and its exit codes: a
// UsageError is what it turns into its "bad usage" exit.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

export class UsageError extends Error {}

export interface CliSpec<O extends Options> {
  options: O;
  /** How many bare arguments (a subcommand, a file) the command takes; default none. */
  positionals?: number;
}

const PARSE_ERRORS = new Set(['ERR_PARSE_ARGS_UNKNOWN_OPTION', 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL']);

/** Parses argv (without node and script); refuses what the spec does not name with a UsageError. */
export function parseCli<const O extends Options>(argv: string[], spec: CliSpec<O>) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: spec.options, strict: true, allowPositionals: true });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code && PARSE_ERRORS.has(code)) throw new UsageError(usageMessage((err as Error).message));
    throw err;
  }
  const extra = parsed.positionals.slice(spec.positionals ?? 0);
  if (extra.length) throw new UsageError(`unexpected argument ${extra[0]}`);
  return parsed;
}

/** Node's first sentence names the option ("Unknown option '--x'"); the rest is advice, shortened here. */
function usageMessage(message: string): string {
  const first = message.split(/\.(?:\s|$)/)[0]!;
  const ambiguous = /^Option '(--[^' ]+)' argument is ambiguous/.exec(first);
  return ambiguous ? `${first}: a value starting with a dash is written ${ambiguous[1]}=<value>` : first;
}

/** `--name` as an integer in min..max, or `def` when absent. */
export function intOption(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}`);
  return n;
}

/**
 * Whether the module at `metaUrl` is the script node was started with. Both sides are
 * compared as real paths: node resolves symlinks for a module's URL but keeps argv[1]
 * as given, and releases are run through the /opt/bf-engine symlink.
 */
export function isEntry(metaUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(fileURLToPath(metaUrl)) === realpathSync(script);
  } catch {
    return false;
  }
}
