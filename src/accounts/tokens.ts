// Opaque bearer tokens: `s<shard>.<43 chars>`. Only a SHA-256 of the token is stored;
// the shard prefix routes the lookup to the user's shard with no directory read.
import { createHash, randomBytes } from 'node:crypto';

const TOKEN_RE = /^s([0-9a-z])\.([A-Za-z0-9_-]{43})$/;

export function newToken(shard: number): { token: string; hash: Buffer } {
  const token = `s${shard.toString(36)}.${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function parseToken(token: string, shardCount: number): { shard: number; hash: Buffer } | null {
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const shard = parseInt(m[1]!, 36);
  return shard < shardCount ? { shard, hash: hashToken(token) } : null;
}
