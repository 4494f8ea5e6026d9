// Structured logs: one JSON line per event on stdout. Callers pass the request id
// in fields so a request can be followed across workers.

type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let minRank = RANK[(process.env.LOG_LEVEL as Level) ?? 'info'] ?? RANK.info;
const base: Record<string, unknown> = {};

export function setLogContext(fields: Record<string, unknown>): void { Object.assign(base, fields); }
export function setLogLevel(level: Level): void { minRank = RANK[level]; }

function emit(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (RANK[level] < minRank) return;
  const line: Record<string, unknown> = { t: new Date().toISOString(), level, msg, ...base, ...fields };
  const err = fields?.err;
  if (err instanceof Error) line.err = { name: err.name, message: err.message, code: (err as { code?: unknown }).code, stack: err.stack };
  process.stdout.write(JSON.stringify(line) + '\n');
}

export const log = {
  debug: (msg: string, f?: Record<string, unknown>) => emit('debug', msg, f),
  info: (msg: string, f?: Record<string, unknown>) => emit('info', msg, f),
  warn: (msg: string, f?: Record<string, unknown>) => emit('warn', msg, f),
  error: (msg: string, f?: Record<string, unknown>) => emit('error', msg, f),
};
