// Cache values and bus messages are msgpack: smaller and faster to decode than JSON.
// Plain msgpack (no record extension), so any msgpack reader understands the bytes,
// including stream clients that ask for ?format=msgpack.
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false });

export function pack(value: unknown): Buffer { return packr.pack(value); }

export function unpack<T>(bytes: Buffer | Uint8Array): T { return packr.unpack(bytes) as T; }
