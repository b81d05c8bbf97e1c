/**
 * The routing table: regions of workers, from the WORKERS var:
 *   [{ "region": "eu-west", "url": "https://...", "continent": "EU", "colos": ["FRA","AMS"], "models": ["m"] }]
 * `continent` (Cloudflare's code) and `colos` (IATA codes of Cloudflare data centres) place a region;
 * `models`, when given, limits the region to those models. A request goes to the nearest healthy region
 * that serves its model: same colo, then same continent, then the nearest continents; equally good
 * regions take turns (round robin per isolate), so a second region on a continent shares its load
 * instead of standing by. A region is unhealthy for REGION_COOLDOWN_MS after a connect error, a
 * timeout or a 5xx; then a background probe of its /healthz (ctx.waitUntil) brings it back, so no user request is the probe.
 * Unhealthy regions are still tried, last, when every healthy one failed.
 * Health is kept per isolate (each Cloudflare isolate learns it from its own traffic).
 */

export const CONTINENTS = ['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'] as const;
export type Continent = (typeof CONTINENTS)[number];

export interface RegionRoute {
  region: string;
  url: string;
  continent?: Continent;
  colos?: string[];
  models?: string[];
}

/** For a request from each continent, the continents in rough order of distance. */
const NEAREST: Record<Continent, Continent[]> = {
  NA: ['NA', 'SA', 'EU', 'OC', 'AS', 'AF', 'AN'],
  SA: ['SA', 'NA', 'EU', 'AF', 'OC', 'AS', 'AN'],
  EU: ['EU', 'AF', 'AS', 'NA', 'SA', 'OC', 'AN'],
  AF: ['AF', 'EU', 'AS', 'SA', 'NA', 'OC', 'AN'],
  AS: ['AS', 'OC', 'EU', 'AF', 'NA', 'SA', 'AN'],
  OC: ['OC', 'AS', 'NA', 'SA', 'EU', 'AF', 'AN'],
  AN: ['AN', 'SA', 'OC', 'AF', 'NA', 'EU', 'AS'],
};
const UNKNOWN_DISTANCE = 50;

const stringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

function parseRoute(raw: unknown): RegionRoute | string {
  if (typeof raw !== 'object' || raw === null) return 'an entry is not an object';
  const r = raw as Record<string, unknown>;
  if (typeof r.region !== 'string' || r.region === '') return 'an entry has no "region"';
  let url: URL;
  try {
    url = new URL(String(r.url));
  } catch {
    return `region ${r.region}: "url" is not a URL`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `region ${r.region}: "url" must be https`;
  if (r.continent !== undefined && !CONTINENTS.includes(r.continent as Continent)) return `region ${r.region}: "continent" must be one of ${CONTINENTS.join(' ')}`;
  if (r.colos !== undefined && !stringList(r.colos)) return `region ${r.region}: "colos" must be a list of strings`;
  if (r.models !== undefined && !stringList(r.models)) return `region ${r.region}: "models" must be a list of strings`;
  return {
    region: r.region,
    url: url.href.replace(/\/+$/, ''),
    ...(r.continent !== undefined ? { continent: r.continent as Continent } : {}),
    ...(r.colos !== undefined ? { colos: (r.colos as string[]).map((c) => c.toUpperCase()) } : {}),
    ...(r.models !== undefined ? { models: r.models as string[] } : {}),
  };
}

let parsedFor: string | undefined;
let parsed: { routes: RegionRoute[]; problems: string[] } = { routes: [], problems: [] };

/** The routing table from WORKERS (parsed once per isolate); entries that do not parse are dropped. */
export function routingTable(workers: string | undefined): { routes: RegionRoute[]; problems: string[] } {
  if (workers === parsedFor) return parsed;
  const routes: RegionRoute[] = [];
  const problems: string[] = [];
  let list: unknown;
  try {
    list = JSON.parse(workers ?? '[]');
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list)) problems.push('WORKERS is not a JSON list');
  else {
    for (const raw of list) {
      const r = parseRoute(raw);
      if (typeof r === 'string') problems.push(r);
      else routes.push(r);
    }
  }
  if (problems.length) console.error(JSON.stringify({ event: 'routing-table-invalid', problems }));
  parsedFor = workers;
  parsed = { routes, problems };
  return parsed;
}

export interface RequestPlace {
  continent?: string;
  colo?: string;
}

export function distance(route: RegionRoute, place: RequestPlace): number {
  if (place.colo && route.colos?.includes(place.colo.toUpperCase())) return 0;
  const order = place.continent ? NEAREST[place.continent as Continent] : undefined;
  if (!order || !route.continent) return UNKNOWN_DISTANCE;
  return 1 + order.indexOf(route.continent);
}

interface RegionHealth {
  failures: number;
  unhealthyUntil: number; // ms; after it, the region is due for a probe
  lastError: string;
  probingSince?: number;
}

const PROBE_TIMEOUT_MS = 5_000;

/** Region health as seen by this isolate. */
export class HealthBook {
  private readonly regions = new Map<string, RegionHealth>();

  isHealthy(region: string): boolean {
    return !this.regions.has(region);
  }

  markFailure(region: string, error: string, now: number, cooldownMs: number): void {
    const h = this.regions.get(region);
    const failures = (h?.failures ?? 0) + 1;
    if (!h) console.warn(JSON.stringify({ event: 'region-unhealthy', region, error }));
    this.regions.set(region, { failures, unhealthyUntil: now + cooldownMs, lastError: error });
  }

  markSuccess(region: string): void {
    if (this.regions.delete(region)) console.warn(JSON.stringify({ event: 'region-healthy', region }));
  }

  /** Unhealthy regions whose cooldown is over and that no probe is checking now. */
  dueForProbe(routes: readonly RegionRoute[], now: number): RegionRoute[] {
    return routes.filter((r) => {
      const h = this.regions.get(r.region);
      return h !== undefined && now >= h.unhealthyUntil && (h.probingSince === undefined || now - h.probingSince > 2 * PROBE_TIMEOUT_MS);
    });
  }

  /** Check a region's /healthz; 2xx makes it healthy, anything else starts another cooldown. */
  async probe(route: RegionRoute, fetcher: (url: string, init?: RequestInit) => Promise<Response>, cooldownMs: number): Promise<void> {
    const h = this.regions.get(route.region);
    if (!h) return;
    h.probingSince = Date.now();
    try {
      const res = await fetcher(`${route.url}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      await res.body?.cancel();
      if (res.ok) this.markSuccess(route.region);
      else this.markFailure(route.region, `probe answered ${res.status}`, Date.now(), cooldownMs);
    } catch {
      this.markFailure(route.region, 'probe failed to connect', Date.now(), cooldownMs);
    }
  }

  snapshot(): Record<string, { failures: number; unhealthyForMs: number; lastError: string }> {
    const now = Date.now();
    return Object.fromEntries([...this.regions].map(([r, h]) => [r, { failures: h.failures, unhealthyForMs: Math.max(0, h.unhealthyUntil - now), lastError: h.lastError }]));
  }
}

/**
 * Whose turn it is in each group of equally good regions, per isolate. One counter per group, so that
 * requests from elsewhere (another group's turns) cannot keep a group on the same first region.
 */
const turns = new Map<string, number>();
const MAX_TURN_GROUPS = 1024;

function nextTurn(group: readonly { route: RegionRoute }[]): number {
  const key = group.map((c) => c.route.region).join('\n');
  const turn = turns.get(key) ?? 0;
  if (!turns.has(key) && turns.size >= MAX_TURN_GROUPS) turns.clear(); // bounded: groups come from the table
  turns.set(key, (turn + 1) % group.length);
  return turn % group.length;
}

/**
 * The regions to try for one request, best first: healthy before unhealthy, then nearest; each group of
 * equally good regions (same health, same distance) in table order, rotated by one more each time.
 */
export function candidates(routes: readonly RegionRoute[], place: RequestPlace, model: unknown, health: HealthBook): RegionRoute[] {
  const serving = routes.filter((r) => !r.models || (typeof model === 'string' && r.models.includes(model)));
  const ranked = serving
    .map((route, index) => ({ route, index, healthy: health.isHealthy(route.region), d: distance(route, place) }))
    .sort((a, b) => Number(b.healthy) - Number(a.healthy) || a.d - b.d || a.index - b.index);
  const out: RegionRoute[] = [];
  for (let start = 0; start < ranked.length; ) {
    let end = start + 1;
    while (end < ranked.length && ranked[end].healthy === ranked[start].healthy && ranked[end].d === ranked[start].d) end++;
    const group = ranked.slice(start, end);
    // Only the group that is tried first takes a turn: a fallback group rotates when it is the best.
    const shift = start === 0 && group.length > 1 ? nextTurn(group) : 0;
    for (const c of [...group.slice(shift), ...group.slice(0, shift)]) out.push(c.route);
    start = end;
  }
  return out;
}
