// Where the machine's cores went during a scenario, from /proc (Linux): the load
// generator (this process), the server under test (the engine, or the bare uWS
// responder: a primary and its workers), Postgres, Redis, processes this one started
// and reaped (pgbench), and everything else (other users of a shared machine). Plus
// the machine's own view from /proc/stat: idle, and time stolen by the hypervisor.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = 100; // USER_HZ on Linux

interface Proc { ticks: number; reaped: number; comm: string; ppid: number }
interface Machine { busy: number; idle: number; steal: number; softirq: number; total: number }
export type CpuSnapshot = { at: number; procs: Map<number, Proc>; machine: Machine | null } | null;

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    // After comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    return { ticks: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]), comm, ppid: Number(f[1]) };
  } catch {
    return null;
  }
}

function readMachine(): Machine | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu as [number, number, number, number, number, number, number, number];
    return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal, softirq, total: user + nice + system + idle + iowait + irq + softirq + steal };
  } catch {
    return null;
  }
}

export function cpuSnapshot(): CpuSnapshot {
  if (!existsSync('/proc/self/stat')) return null;
  const procs = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) procs.set(Number(name), p);
  }
  return { at: performance.now(), procs, machine: readMachine() };
}

/**
 * Cores used per group between two snapshots (1.0 = one core busy the whole time).
 * A process's time counts with its group; a child that exits inside the window is
 * counted through its parent's reaped-children time (Postgres backends through the
 * postmaster, pgbench through this process: `bench_children`).
 */
export function coresUsed(before: CpuSnapshot, after: CpuSnapshot, serverPid: number | null, serverLabel = 'engine'): Record<string, number> | null {
  if (!before || !after) return null;
  const wall = (after.at - before.at) / 1000;
  const group = (pid: number, p: Proc): string => {
    if (pid === process.pid) return 'load_generator';
    if (serverPid !== null && (pid === serverPid || p.ppid === serverPid)) return serverLabel;
    if (p.comm === 'postgres') return 'postgres';
    if (p.comm.startsWith('redis-server')) return 'redis';
    return 'other';
  };
  const groups: Record<string, number> = { load_generator: 0, [serverLabel]: 0, postgres: 0, redis: 0, bench_children: 0, other: 0 };
  const tally = (snap: NonNullable<CpuSnapshot>, sign: number) => {
    for (const [pid, p] of snap.procs) {
      const g = group(pid, p);
      groups[g] = (groups[g] ?? 0) + sign * (pid === process.pid ? p.ticks : p.ticks + p.reaped);
      if (pid === process.pid) groups.bench_children! += sign * p.reaped;
    }
  };
  tally(after, 1);
  tally(before, -1);
  const out: Record<string, number> = {};
  for (const [g, t] of Object.entries(groups)) out[g] = Math.max(0, Math.round((t / CLK_TCK / Math.max(wall, 0.001)) * 100) / 100);
  const a = after.machine, b = before.machine;
  if (a && b && a.total > b.total) {
    const cores = (t: number) => Math.round(((t / CLK_TCK) / Math.max(wall, 0.001)) * 100) / 100;
    out.machine_busy = cores(a.busy - b.busy);
    out.machine_idle = cores(a.idle - b.idle);
    out.machine_steal = cores(a.steal - b.steal);
  }
  return out;
}
