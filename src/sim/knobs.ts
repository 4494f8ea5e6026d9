// Failure knobs: declared once per simulator, read from env at start, changed
// at run time through PUT /_sim/knobs, and put back by POST /_sim/reset.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, readJsonObject, readRawBody, sendJson, type Json, type Route } from './http.js';

/** int: whole number in [min,max]; rate: probability 0..1; bool: on/off (env 0/1). */
export type KnobKind = 'int' | 'rate' | 'bool';

export interface KnobDef {
  env: string;
  kind: KnobKind;
  fallback: number | boolean;
  min?: number;
  max?: number;
}

export type KnobSpec<K extends string> = Record<K, KnobDef>;
export type KnobValues<K extends string> = Record<K, number | boolean>;

type Env = Record<string, string | undefined>;

/** Env values are validated like PUT values so a typo fails loudly at start. */
export function knobsFromEnv<K extends string>(spec: KnobSpec<K>, env: Env): KnobValues<K> {
  const out = {} as KnobValues<K>;
  for (const name of Object.keys(spec) as K[]) {
    const def = spec[name];
    const raw = env[def.env];
    if (raw === undefined || raw === '') {
      out[name] = def.fallback;
      continue;
    }
    const parsed: unknown = def.kind === 'bool' ? raw === '1' || raw === 'true' : Number(raw);
    try {
      out[name] = checkKnob(name, def, parsed);
    } catch (err) {
      throw new Error(`env ${def.env}=${raw}: ${(err as Error).message}`);
    }
  }
  return out;
}

/** Validates a whole patch first so a bad field leaves every knob unchanged. */
export function patchKnobs<K extends string>(
  spec: KnobSpec<K>,
  current: KnobValues<K>,
  patch: Json,
): KnobValues<K> {
  const next = { ...current };
  for (const [name, value] of Object.entries(patch)) {
    if (!Object.hasOwn(spec, name)) {
      throw new HttpError(400, 'invalid_request', `unknown knob: ${name}`);
    }
    next[name as K] = checkKnob(name, spec[name as K], value);
  }
  return next;
}

function checkKnob(name: string, def: KnobDef, value: unknown): number | boolean {
  if (def.kind === 'bool') {
    // Accept 0/1 as well as booleans: the env form is 0/1.
    if (value === true || value === 1) return true;
    if (value === false || value === 0) return false;
    throw new HttpError(400, 'invalid_request', `${name} must be a boolean or 0/1`);
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new HttpError(400, 'invalid_request', `${name} must be a number`);
  }
  if (def.kind === 'rate') {
    if (value < 0 || value > 1) throw new HttpError(400, 'invalid_request', `${name} must be in 0..1`);
    return value;
  }
  const min = def.min ?? 0;
  const max = def.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new HttpError(400, 'invalid_request', `${name} must be an integer in ${min}..${max}`);
  }
  return value;
}

/** A coin toss at a rate knob; rate 0 never fires, rate 1 always does. */
export function roll(rate: number | boolean): boolean {
  const r = Number(rate);
  return r > 0 && Math.random() < r;
}

export function intEnv(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`env ${name}=${raw}: must be an integer >= ${min}`);
  return n;
}

/** What the test-control routes need of a simulator. */
export interface Controllable<K extends string> {
  knobs: KnobValues<K>;
  readonly stats: unknown;
  readonly opts: { knobs: KnobValues<K> };
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Json): void;
}

/** `/_sim/knobs` (GET, PUT), `/_sim/stats`, `/_sim/reset`: the same on every simulator. */
export function controlRoutes<C extends { req: IncomingMessage; res: ServerResponse }, K extends string>(
  spec: KnobSpec<K>, sim: (ctx: C) => Controllable<K>,
): Route<C>[] {
  return [
    { method: 'GET', pattern: /^\/_sim\/knobs$/, handle: (ctx) => sendJson(ctx.res, 200, sim(ctx).knobs) },
    {
      method: 'PUT',
      pattern: /^\/_sim\/knobs$/,
      handle: async (ctx) => {
        const s = sim(ctx);
        s.knobs = patchKnobs(spec, s.knobs, await readJsonObject(ctx.req));
        s.log('info', 'knobs_changed', { knobs: s.knobs });
        sendJson(ctx.res, 200, s.knobs);
      },
    },
    { method: 'GET', pattern: /^\/_sim\/stats$/, handle: (ctx) => sendJson(ctx.res, 200, sim(ctx).stats) },
    {
      method: 'POST',
      pattern: /^\/_sim\/reset$/,
      handle: async (ctx) => {
        await readRawBody(ctx.req);
        const s = sim(ctx);
        s.knobs = { ...s.opts.knobs };
        s.log('info', 'knobs_reset', { knobs: s.knobs });
        sendJson(ctx.res, 200, s.knobs);
      },
    },
  ];
}
