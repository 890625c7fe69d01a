/**
 * Progress of `pip install` read from its output, for the panel's
 * "Installing ESPHome X: N %". What is counted, honestly:
 *
 * - venv made: 5 %.
 * - Collecting (resolving and downloading): each `Collecting <pkg>` line is one
 *   package; the share of the expected count maps onto 5-70 %. The expected count
 *   is exact for the pinned version (its constraints file lists every package)
 *   and an estimate for other versions (the pinned version's count, since
 *   neighbouring releases have about as many); it is capped, never overshoots.
 * - Installing: pip prints `Installing collected packages: a, b, …` once and
 *   nothing per package, so the install shows 75 % until pip ends.
 * - pip done (`Successfully installed`): 90 %; the check that the new
 *   `esphome version` answers: 95 %; ready: 100 %.
 *
 * The figure never falls.
 */

export type ProvisionPhase = "python" | "venv" | "downloading" | "installing" | "checking" | "done";

export interface PipProgressState {
  phase: ProvisionPhase;
  percent: number;
  collected: number;
  expected: number;
}

const COLLECTING = /^Collecting\s+\S/;
const ALREADY = /^Requirement already satisfied:/;
const INSTALLING = /^Installing collected packages:\s*(.*)$/;
const SUCCESS = /^Successfully installed\s/;

export class PipProgress {
  #state: PipProgressState;

  constructor(expected: number) {
    this.#state = { phase: "downloading", percent: 5, collected: 0, expected: Math.max(1, expected) };
  }

  get state(): Readonly<PipProgressState> {
    return this.#state;
  }

  /** Feeds one output line; returns true when the figure or phase changed. */
  feed(rawLine: string): boolean {
    // eslint-disable-next-line no-control-regex
    const line = rawLine.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").trim();
    const before = `${this.#state.phase}:${this.#state.percent}`;
    if (COLLECTING.test(line) || ALREADY.test(line)) {
      this.#state.collected += 1;
      const share = Math.min(1, this.#state.collected / this.#state.expected);
      this.#raise("downloading", 5 + Math.floor(share * 65));
    } else if (INSTALLING.test(line)) {
      this.#raise("installing", 75);
    } else if (SUCCESS.test(line)) {
      this.#raise("installing", 90);
    }
    return before !== `${this.#state.phase}:${this.#state.percent}`;
  }

  #raise(phase: ProvisionPhase, percent: number): void {
    if (this.#state.phase === "installing" && phase === "downloading") return;
    this.#state.phase = phase;
    this.#state.percent = Math.max(this.#state.percent, Math.min(percent, 99));
  }
}

/** Packages pip will install for a constraints file: its pinned lines plus ESPHome itself. */
export function expectedPackages(constraints: string): number {
  return constraints.split("\n").filter((l) => /^[A-Za-z0-9][A-Za-z0-9._-]*==/.test(l.trim())).length + 1;
}
