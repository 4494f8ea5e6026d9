// Named statements of profiles: a user's own data on the user's shard.
const PROFILE_COLS = 'id, email, name, role, phone, address, created_at, updated_at';

export const PROFILE_SQL = {
  get: { name: 'prof_get', text: `SELECT ${PROFILE_COLS} FROM users WHERE id = $1 AND deleted_at IS NULL` },
  // Each field changes only when given ($2, $4, $6); null clears it.
  update: {
    name: 'prof_update',
    text: `UPDATE users SET name = CASE WHEN $2::boolean THEN $3::text ELSE name END,
             phone = CASE WHEN $4::boolean THEN $5::text ELSE phone END,
             address = CASE WHEN $6::boolean THEN $7::jsonb ELSE address END, updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL RETURNING ${PROFILE_COLS}`,
  },
  passwordHash: { name: 'prof_password_hash',
    text: 'SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL' },
  // Fenced on the hash the current password was checked against: a concurrent change wins once.
  setPassword: {
    name: 'prof_set_password',
    text: `UPDATE users SET password_hash = $3, updated_at = now()
           WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL`,
  },
  revokeOthers: {
    name: 'prof_revoke_others',
    text: 'UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND token_hash <> $2 AND revoked_at IS NULL',
  },
  revokeAll: { name: 'prof_revoke_all',
    text: 'UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL' },
  // Personal data goes; the row stays, so orders, ledger and audit keep their customer id.
  // The hash is no scrypt string, so no password ever matches it.
  anonymize: {
    name: 'prof_anonymize',
    text: `UPDATE users SET email = 'deleted:' || id::text, name = NULL, phone = NULL, address = NULL,
             password_hash = '!deleted', deleted_at = now(), updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL RETURNING 1`,
  },
  dropCart: { name: 'prof_drop_cart', text: 'DELETE FROM cart_lines WHERE customer_id = $1' },
} as const;
