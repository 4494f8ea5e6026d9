// Named statements of the feature flags. Flags live on the home shard (0).
export const HOME_SHARD = 0;

export const SQL = {
  all: { name: 'flags_all',
    text: 'SELECT name, enabled, updated_at, updated_by FROM feature_flags ORDER BY name LIMIT 1000' },
  one: { name: 'flags_one', text: 'SELECT name, enabled, updated_at, updated_by FROM feature_flags WHERE name = $1' },
  set: {
    name: 'flags_set',
    text: `INSERT INTO feature_flags (name, enabled, updated_by) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by,
             updated_at = now()
           RETURNING name, enabled, updated_at, updated_by`,
  },
} as const;
