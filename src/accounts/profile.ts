// A user's own profile: read, change (name, phone, shipping address), change the
// password (other sessions revoked, this one kept), and delete: personal data is
// anonymized while orders, ledger and audit stay intact (they carry only the user id).
import type { Core, Sessions } from '../deps.js';
import { EngineError } from '../errors.js';
import { hashPassword, verifyPassword } from './password.js';
import { PROFILE_SQL } from './profile-sql.js';
import type { Principal } from './principal.js';
import { publicUserId } from './service.js';
import { SQL } from './sql.js';
import { hashToken } from './tokens.js';

export interface Address { line1: string; line2?: string; city: string; postal_code: string; country: string }

export interface Profile {
  id: string; email: string; name: string | null; phone: string | null; address: Address | null; role: string;
  created_at: string; updated_at: string;
}

export interface ProfilePatch { name?: string | null; phone?: string | null; address?: Address | null }

function toProfile(deps: Core, r: Record<string, unknown>): Profile {
  return {
    id: publicUserId(deps, r.id as string), email: r.email as string, name: (r.name as string | null) ?? null,
    phone: (r.phone as string | null) ?? null, address: (r.address as Address | null) ?? null, role: r.role as string,
    created_at: (r.created_at as Date).toISOString(), updated_at: (r.updated_at as Date).toISOString(),
  };
}

async function userRow(deps: Core, p: Principal): Promise<Record<string, unknown>> {
  const row = (await deps.shards.get(p.shard).query(PROFILE_SQL.get, [p.uuid])).rows[0];
  if (!row) throw new EngineError('not_found', 'No such user');
  return row;
}

export async function getProfile(deps: Core, p: Principal): Promise<Profile> {
  return toProfile(deps, await userRow(deps, p));
}

export async function updateProfile(deps: Core, p: Principal, patch: ProfilePatch): Promise<Profile> {
  const res = await deps.shards.get(p.shard).query(PROFILE_SQL.update, [
    p.uuid, 'name' in patch, patch.name ?? null, 'phone' in patch, patch.phone ?? null,
    'address' in patch, patch.address ? JSON.stringify(patch.address) : null,
  ]);
  if (!res.rows[0]) throw new EngineError('not_found', 'No such user');
  return toProfile(deps, res.rows[0]);
}

/** Returns how many other sessions were revoked; the session that asked stays valid. */
export async function changePassword(deps: Core & Sessions, p: Principal, token: string, current: string,
  next: string): Promise<number> {
  const s = deps.shards.get(p.shard);
  const row = (await s.query(PROFILE_SQL.passwordHash, [p.uuid])).rows[0];
  if (!row) throw new EngineError('not_found', 'No such user');
  const stored = row.password_hash as string;
  if (!(await verifyPassword(current, stored))) throw new EngineError('wrong_password');
  const hash = await hashPassword(next, deps.cfg.passwordScryptN);
  const revoked = await s.transaction(async (q) => {
    const set = await q.query(PROFILE_SQL.setPassword, [p.uuid, stored, hash]);
    if (set.rowCount !== 1) throw new EngineError('conflict', 'The password changed meanwhile; try again');
    return (await q.query(PROFILE_SQL.revokeOthers, [p.uuid, hashToken(token)])).rowCount ?? 0;
  });
  await deps.authCache.revoked(p.uuid);
  return revoked;
}

/**
 * The email index row goes first (conditional on this user), so the email can be
 * registered again; then, in one transaction on the user's shard, the personal data,
 * every session and the cart. A failure in between leaves the session valid, so the
 * user (or a retry) can run it again: both steps are idempotent.
 */
export async function deleteAccount(deps: Core & Sessions, p: Principal): Promise<void> {
  if (p.role === 'admin') throw new EngineError('forbidden', 'Admin accounts cannot delete themselves');
  const row = await userRow(deps, p);
  const email = row.email as string;
  await deps.shards.get(deps.dir.shardOfUserKey(email)).query(SQL.releaseEmail, [email, p.uuid]);
  await deps.shards.get(p.shard).transaction(async (q) => {
    await q.query(PROFILE_SQL.anonymize, [p.uuid]);
    await q.query(PROFILE_SQL.revokeAll, [p.uuid]);
    await q.query(PROFILE_SQL.dropCart, [p.uuid]);
  });
  await deps.authCache.revoked(p.uuid);
}
