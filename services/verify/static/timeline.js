// The timeline of a verified receipt (inlined as "notar-timeline"): the notarization, the signed
// time, then each anchor with its time, drawn as an SVG picture; the same events, in the same
// order, as the PDF report of `notar verify --report` (services/cli/report.py).

import { FAILED, NOT_CHECKED, OK } from "notar-receipt";

const SVG = "http://www.w3.org/2000/svg";
const KINDS = { local: "local chain", evm: "EVM chain", rfc3161: "RFC 3161" };

/** The events: {label, kind, time (seconds or null), status, claimed}; the notarization first,
 * the signed time second, the anchors after it in the order of their times (those without one
 * last, in the receipt's order). A time that was not checked is a claim (`claimed`). */
export function timelineEvents(result) {
  const signed = result.checks.find((c) => c.name === "signed time");
  const proved = result.checks.filter((c) => c.name === "entry" || c.name === "inclusion").every((c) => c.status === OK);
  const events = [
    { label: "Notarized", kind: `entry ${result.index}`, time: null, status: proved ? OK : FAILED, claimed: false },
    { label: "Signed time", kind: "the service's clock", time: result.time, status: signed ? signed.status : NOT_CHECKED, claimed: false },
  ];
  const anchors = result.anchors.map(({ record, check, info }, k) => {
    let time = null;
    if (record.type === "local" && info) time = info.seconds ?? null;
    if (record.type === "rfc3161" && info) time = info.seconds ?? null;
    const kind = KINDS[record.type] ?? String(record.type).slice(0, 20);
    return { label: `Anchor ${k + 1}`, kind, time, status: check.status, claimed: time !== null && check.status !== OK, k };
  });
  anchors.sort((a, b) => (a.time === null) - (b.time === null) || (a.time ?? 0) - (b.time ?? 0) || a.k - b.k);
  return [...events, ...anchors.map(({ k, ...e }) => e)];
}

function two(n) {
  return String(n).padStart(2, "0");
}

/** [date, time] lines of an event's time, as the report prints them. */
export function timeLines(event) {
  if (event.time === null || event.time === undefined) return [event.label === "Notarized" ? "before the" : "no time", event.label === "Notarized" ? "signed time" : "known here"];
  if (Number(event.time) > 253402300799) return [`${event.time} s after`, "1970 (claimed)"];
  const d = new Date(Number(event.time) * 1000);
  const date = `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`;
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC`;
  return [date, event.claimed ? `${time} (claimed)` : time];
}

/** The gap between two times, in words ("+12 s", "+3 min", "+2 h", "+4 d"). */
export function gap(from, to) {
  const s = Number(to) - Number(from);
  const sign = s < 0 ? "−" : "+";
  const a = Math.abs(s);
  if (a < 120) return `${sign}${a} s`;
  if (a < 7200) return `${sign}${Math.round(a / 60)} min`;
  if (a < 172800) return `${sign}${Math.round(a / 3600)} h`;
  return `${sign}${Math.round(a / 86400)} d`;
}

function node(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

/** Draw `events` into the <svg> element `svg` (its viewBox is set here): up to six side by side,
 * more alternately above and below the axis, wider than 720 units when they would overlap. */
export function drawTimeline(svg, events) {
  const n = events.length;
  const stagger = n > 6;
  // Staggered, the labels on one side are two steps apart: at least 92 units, or they overlap
  // (the picture is drawn smaller instead: it keeps the width of the page).
  const width = Math.max(720, 2 * 50 + (n - 1) * (stagger ? 46 : 0));
  const height = stagger ? 170 : 110;
  const axis = stagger ? 85 : 50;
  const left = 50;
  const step = n > 1 ? (width - 2 * left) / (n - 1) : 0;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  svg.append(node("line", { x1: 12, y1: axis, x2: width - 12, y2: axis, class: "tl-axis" }));
  svg.append(node("path", { d: `M ${width - 12} ${axis} l -9 -5 v 10 z`, class: "tl-arrow" }));
  events.forEach((e, k) => {
    const x = left + k * step;
    const status = e.status === OK ? "ok" : e.status === NOT_CHECKED ? "skip" : "bad";
    if (k > 0 && e.time !== null && events[k - 1].time !== null && !stagger) {
      svg.append(node("text", { x: x - step / 2, y: axis - 5, class: "tl-gap" }, gap(events[k - 1].time, e.time)));
    }
    svg.append(node("circle", { cx: x, cy: axis, r: 7, class: `tl-mark tl-${status}` }));
    const mark = e.status === OK ? "✓" : e.status === NOT_CHECKED ? "–" : "✗";
    svg.append(node("text", { x, y: axis + 4, class: `tl-sym tl-sym-${status}` }, mark));
    const [date, time] = timeLines(e);
    // Side by side: the names above the axis, the times below; staggered: all of one event on one side.
    const lines = [[e.label, "tl-label"], [e.kind, "tl-kind"], [date, "tl-time"], [time, "tl-time"]];
    const ys = !stagger ? [axis - 30, axis - 17, axis + 24, axis + 37] : k % 2 === 0 ? [axis - 62, axis - 49, axis - 34, axis - 21] : [axis + 26, axis + 39, axis + 54, axis + 67];
    lines.forEach(([text, cls], j) => svg.append(node("text", { x, y: ys[j], class: cls }, text)));
  });
}
