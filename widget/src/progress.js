// OTP widget — a sync's progress in numbers: rate, remaining time, their French formatting.
// Pure (no DOM, no state): tests/test_widget_modules.py runs it with Node.

export function formatCount(n) { return Number(n).toLocaleString('fr-FR'); }

// « 45 s », « 3 min », « 1 h 05 » (at least one second).
export function formatDuration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')}`;
}

// A rate in dossiers per second: one decimal below 10, a whole number above.
export function formatRate(perSecond) {
  return perSecond < 10 ? perSecond.toLocaleString('fr-FR', { maximumFractionDigits: 1 })
    : formatCount(Math.round(perSecond));
}

// The rate since the reference point `base` ({done, t}, t in ms; the first progress event, or a
// new one when the count went back), and the seconds left when the total is known.
// -> {base, perSecond, remaining}: perSecond null before half a second or a first dossier read;
//    remaining null when the total is unknown or reached.
export function estimate(base, done, total, now) {
  const from = !base || done < base.done ? { done, t: now } : base;
  const seconds = (now - from.t) / 1000;
  const read = done - from.done;
  if (seconds < 0.5 || read <= 0) return { base: from, perSecond: null, remaining: null };
  const perSecond = read / seconds;
  const remaining = total !== null && total !== undefined && total > done ? (total - done) / perSecond : null;
  return { base: from, perSecond, remaining };
}
