// Typed client for the JSON export written by `sprocket export --json`.
// Compiled separately (tsc) for the upcoming dashboard rewrite; not part of the bundle yet.

export interface Ride {
  id: number;
  name: string;
  started_at: string | null;
  distance_m: number;
  gain_m: number;
  moving_s: number;
  tags: string[];
}

export interface Export {
  version: 1;
  year: number | null;
  rides: Ride[];
}

export class ExportError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "ExportError";
  }
}

function isRide(x: unknown): x is Ride {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    typeof r.id === "number" &&
    typeof r.name === "string" &&
    (typeof r.started_at === "string" || r.started_at === null) &&
    typeof r.distance_m === "number" &&
    typeof r.gain_m === "number" &&
    typeof r.moving_s === "number" &&
    Array.isArray(r.tags)
  );
}

export async function loadExport(url: string, signal?: AbortSignal): Promise<Export> {
  const res = await fetch(url, { signal, headers: { Accept: "application/json" } });
  if (!res.ok) throw new ExportError(`HTTP ${res.status} for ${url}`, res.status);
  const data: unknown = await res.json();
  if (typeof data !== "object" || data === null) throw new ExportError("export is not an object");
  const obj = data as Partial<Export>;
  if (obj.version !== 1) throw new ExportError(`unsupported export version ${String(obj.version)}`);
  const rides = (obj.rides ?? []).filter(isRide);
  return { version: 1, year: obj.year ?? null, rides };
}

export function byTag(rides: readonly Ride[]): Map<string, Ride[]> {
  const out = new Map<string, Ride[]>();
  for (const ride of rides) {
    for (const tag of ride.tags.length ? ride.tags : ["untagged"]) {
      const list = out.get(tag) ?? [];
      list.push(ride);
      out.set(tag, list);
    }
  }
  return out;
}

export function longest(rides: readonly Ride[], n = 5): Ride[] {
  return [...rides].sort((a, b) => b.distance_m - a.distance_m).slice(0, n);
}
