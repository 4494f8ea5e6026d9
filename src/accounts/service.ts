// Accounts: register, login, logout, authenticate. Users live on the shard a hash of
// their id picks; the email -> user index lives on the shard a hash of the email picks,
// and its primary key is what makes an email unique across all shards.
import { randomUUID } from 'node:crypto';
import type { Core, Sessions } from '../deps.js';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { encodeUser, uuidToHex } from '../router/ids.js';
import { burnPasswordCheck, hashPassword, needsRehash, verifyPassword } from './password.js';
import { SQL } from './sql.js';
import type { Principal, Role } from './principal.js';
import { newToken, parseToken } from './tokens.js';

export interface PublicUser { id: string; email: string; name: string | null; role: Role }

function userShard(deps: Core, uuid: string): number {
  return deps.dir.shardOfUserKey(uuidToHex(uuid));
}

export function publicUserId(deps: Core, uuid: string): string {
  return encodeUser(userShard(deps, uuid), uuidToHex(uuid));
}

export async function register(deps: Core, input: { email: string; password: string; name?: string },
  role: Role = 'customer'): Promise<PublicUser> {
  const email = input.email.toLowerCase();
  const uuid = randomUUID();
  const emailShard = deps.shards.get(deps.dir.shardOfUserKey(email));
  const hash = await hashPassword(input.password, deps.cfg.passwordScryptN);
  const claimed = await emailShard.query(SQL.claimEmail, [email, uuid]);
  if (claimed.rowCount === 0) throw new EngineError('email_taken');
  try {
    await deps.shards.get(userShard(deps, uuid)).query(SQL.insertUser, [uuid, email, hash, input.name ?? null, role]);
  } catch (err) {
    // Compensate: the email claim must not outlive a user that was never written.
    await emailShard.query(SQL.releaseEmail, [email, uuid]).catch((e: unknown) =>
      log.error('email claim leaked', { email, err: e }));
    throw err;
  }
  return { id: publicUserId(deps, uuid), email, name: input.name ?? null, role };
}

async function findByEmail(deps: Core, email: string) {
  const idx = await deps.shards.get(deps.dir.shardOfUserKey(email)).query<{ user_id: string }>(SQL.emailOwner, [email]);
  const uuid = idx.rows[0]?.user_id;
  if (!uuid) return null;
  const res = await deps.shards.get(userShard(deps, uuid)).query(SQL.userById, [uuid]);
  return res.rows[0] ?? null;
}

/** Registration through the API: limited per client address (each one costs an scrypt call). */
export async function signUp(deps: Core & Sessions, input: { email: string; password: string; name?: string },
  ip = ''): Promise<PublicUser> {
  await deps.loginLimits.registering(ip);
  return register(deps, input);
}

/** The user an email and password name, or null; unknown and deleted users cost the same time. */
async function checkCredentials(deps: Core, email: string, password: string) {
  const user = await findByEmail(deps, email);
  if (!user || user.deleted_at) {
    await burnPasswordCheck(password, deps.cfg.passwordScryptN);
    return null;
  }
  return (await verifyPassword(password, user.password_hash as string)) ? user : null;
}

export async function login(deps: Core & Sessions, input: { email: string; password: string }, ip = '') {
  const email = input.email.toLowerCase();
  const check = () => checkCredentials(deps, email, input.password);
  const user = await deps.loginLimits.attempt(email, ip, check);
  if (!user) throw new EngineError('invalid_credentials');
  await upgradeHash(deps, user.id as string, user.password_hash as string, input.password);
  const shard = userShard(deps, user.id as string);
  const { token, hash } = newToken(shard);
  const res = await deps.shards.get(shard).query<{ expires_at: Date }>(SQL.insertSession,
    [hash, user.id, deps.cfg.sessionTtlS]);
  return {
    token, user_id: publicUserId(deps, user.id as string), role: user.role as Role,
    expires_at: res.rows[0]!.expires_at.toISOString(),
  };
}

/**
 * A password stored at a lower scrypt cost than configured is hashed again at the
 * current one, now that the login has the plain password. Best effort: a failure
 * leaves the old hash, which still verifies, for the next login to replace.
 */
async function upgradeHash(deps: Core, uuid: string, stored: string, password: string): Promise<void> {
  if (!needsRehash(stored, deps.cfg.passwordScryptN)) return;
  try {
    const hash = await hashPassword(password, deps.cfg.passwordScryptN);
    await deps.shards.get(userShard(deps, uuid)).query(SQL.rehashPassword, [uuid, stored, hash]);
  } catch (err) {
    log.warn('password rehash failed; the next login tries again', { err });
  }
}

/** Resolves a bearer token to its user, or null when unknown, expired or revoked. */
export async function authenticate(deps: Core & Sessions, token: string): Promise<Principal | null> {
  const parsed = parseToken(token, deps.shards.count);
  if (!parsed) return null;
  const key = parsed.hash.toString('hex');
  const cached = deps.authCache.get(key);
  if (cached) return cached;
  const res = await deps.shards.get(parsed.shard).query<{ id: string; role: Role; expires_at: Date }>(SQL.sessionUser,
    [parsed.hash]);
  const row = res.rows[0];
  if (!row) return null;
  const p: Principal = { id: publicUserId(deps, row.id), uuid: row.id, shard: parsed.shard, role: row.role };
  deps.authCache.set(key, p, row.expires_at.getTime());
  return p;
}

export async function logout(deps: Core & Sessions, p: Principal, token: string): Promise<void> {
  const parsed = parseToken(token, deps.shards.count);
  if (parsed) await deps.shards.get(parsed.shard).query(SQL.revokeSession, [parsed.hash]);
  await deps.authCache.revoked(p.uuid);
}

/** ensureAdmin refuses an ADMIN_EMAIL that an account holds without being admin. */
export class AdminEmailTaken extends EngineError {
  constructor(email: string) {
    super('conflict', `ADMIN_EMAIL=${email} belongs to an account that is not an admin (registered by someone, ` +
      'with a password of their choosing); it is never promoted. Set ADMIN_EMAIL to an address no account holds.');
  }
}

/**
 * The first admin comes from config at start: created as admin with ADMIN_PASSWORD if
 * no account holds the email. Only an account the engine created as admin is admin: one
 * that holds the email already (anyone may register any address) is refused, never promoted.
 */
export async function ensureAdmin(deps: Core, email: string, password: string): Promise<void> {
  let existing = await findByEmail(deps, email);
  if (!existing) {
    await register(deps, { email, password, name: 'Administrator' }, 'admin').catch((err: unknown) => {
      if (!(err instanceof EngineError && err.code === 'email_taken')) throw err;
    });
    // Taken meanwhile: by another app server creating the admin, or by a registration.
    existing = await findByEmail(deps, email);
  }
  if (existing && existing.role !== 'admin') throw new AdminEmailTaken(email);
}
