// Structured logs: one JSON line per event on stdout. Callers pass the request id
// in fields so a request can be followed across workers. The level comes from the
// validated config (LOG_LEVEL): each process entry sets it once the config is loaded,
// and until then (a config refusal included) it is info.

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LOG_LEVELS)[number];
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let minRank = RANK.info;
const base: Record<string, unknown> = {};

export function setLogContext(fields: Record<string, unknown>): void { Object.assign(base, fields); }
export function setLogLevel(level: Level): void { minRank = RANK[level]; }

function emit(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (RANK[level] < minRank) return;
  const line: Record<string, unknown> = { t: new Date().toISOString(), level, msg, ...base, ...fields };
  const err = fields?.err;
  if (err instanceof Error) line.err = { name: err.name, message: err.message, code: (err as { code?: unknown }).code,
    stack: err.stack };
  process.stdout.write(JSON.stringify(line) + '\n');
}

export const log = {
  debug: (msg: string, f?: Record<string, unknown>) => emit('debug', msg, f),
  info: (msg: string, f?: Record<string, unknown>) => emit('info', msg, f),
  warn: (msg: string, f?: Record<string, unknown>) => emit('warn', msg, f),
  error: (msg: string, f?: Record<string, unknown>) => emit('error', msg, f),
};
