// Named statements of the accounts domain. Parameters are always bound.
export const SQL = {
  claimEmail: {
    name: 'acc_claim_email',
    text: 'INSERT INTO email_index (email, user_id) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING RETURNING user_id',
  },
  releaseEmail: { name: 'acc_release_email', text: 'DELETE FROM email_index WHERE email = $1 AND user_id = $2' },
  emailOwner: { name: 'acc_email_owner', text: 'SELECT user_id FROM email_index WHERE email = $1' },
  insertUser: {
    name: 'acc_insert_user',
    text: `INSERT INTO users (id, email, password_hash, name, role) VALUES ($1, $2, $3, $4, $5)
           RETURNING id, email, name, role, created_at`,
  },
  userById: {
    name: 'acc_user_by_id',
    text: `SELECT id, email, password_hash, name, role, phone, address, created_at, deleted_at
           FROM users WHERE id = $1`,
  },
  // Fenced on the hash the password was checked against: a password changed meanwhile wins.
  rehashPassword: {
    name: 'acc_rehash_password',
    text: 'UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL',
  },
  insertSession: {
    name: 'acc_insert_session',
    text: `INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
           RETURNING expires_at`,
  },
  sessionUser: {
    name: 'acc_session_user',
    text: `SELECT u.id, u.role, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL`,
  },
  revokeSession: {
    name: 'acc_revoke_session',
    text: 'UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL',
  },
} as const;
