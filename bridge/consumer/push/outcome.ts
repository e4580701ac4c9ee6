/**
 * What the app's answer means for a record (contract section 7): 2xx is success unless the JSON
 * body says `RETRY` or `DROP`; 408, 429, 5xx, timeouts and connection errors are retried; any other
 * 4xx is poison. A batch answers per event with `{"statuses":[{"id","status"}]}`.
 */
export type Outcome = 'success' | 'retry' | 'drop' | 'poison';

export interface AppAnswer {
  readonly status: number;
  /** The response body as text ('' when empty or unread). */
  readonly body: string;
  readonly contentType?: string | undefined;
}

/** The status of a 2xx answer's body: `RETRY`/`DROP` (any case), else success. */
function bodyVerdict(value: unknown): Outcome {
  if (typeof value !== 'object' || value === null) return 'success';
  const status = (value as { status?: unknown }).status;
  if (typeof status !== 'string') return 'success';
  switch (status.toUpperCase()) {
    case 'RETRY':
      return 'retry';
    case 'DROP':
      return 'drop';
    default:
      return 'success';
  }
}

function parseJson(answer: AppAnswer): unknown {
  if (answer.body.length === 0) return undefined;
  try {
    return JSON.parse(answer.body) as unknown;
  } catch {
    return undefined;
  }
}

/** Outcome of an answer that applies to every record of the request. */
export function statusOutcome(status: number): Outcome {
  if (status >= 200 && status < 300) return 'success';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'poison';
}

/** The outcome of a single-mode delivery. */
export function singleOutcome(answer: AppAnswer): Outcome {
  const outcome = statusOutcome(answer.status);
  return outcome === 'success' ? bodyVerdict(parseJson(answer)) : outcome;
}

/**
 * Outcomes of a batch delivery of `count` events, in their order; `idAt(i)` is the id of event i
 * (only asked for when the answer has per-event statuses). A 2xx answer without `statuses` (or
 * without an entry for an id) means success for those events; any other answer applies to all of
 * them.
 */
export function batchOutcomes(answer: AppAnswer, count: number, idAt: (index: number) => string): Outcome[] {
  const all = (outcome: Outcome) => new Array<Outcome>(count).fill(outcome);
  const overall = statusOutcome(answer.status);
  if (overall !== 'success') return all(overall);
  const body = parseJson(answer);
  const statuses = (body as { statuses?: unknown } | undefined)?.statuses;
  // A body-level verdict (`{"status":"RETRY"}`) applies to the whole batch.
  if (!Array.isArray(statuses)) return all(bodyVerdict(body));
  const byId = new Map<string, Outcome>();
  for (const entry of statuses as unknown[]) {
    const id = (entry as { id?: unknown } | null)?.id;
    if (typeof id === 'string') byId.set(id, bodyVerdict(entry));
  }
  return Array.from({ length: count }, (_, index) => byId.get(idAt(index)) ?? 'success');
}
