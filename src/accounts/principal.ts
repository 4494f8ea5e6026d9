// Who is asking: the authenticated caller every domain function is handed (resolved
// from a bearer token by accounts/service.ts, cached per process by auth-cache.ts).
export type Role = 'customer' | 'admin';

export interface Principal { id: string; uuid: string; shard: number; role: Role }
