// A file edit as a diff: the lines removed and added between the old and
// the new text (ACP tool-call content {type: "diff", path, oldText,
// newText}), with a few lines of context around each change.

import { h } from "./dom.js";

const CONTEXT = 3;
// Above this many line pairs the diff is not computed: the old text shows
// as removed and the new as added.
const MAX_CELLS = 4_000_000;

// lineDiff returns [{op: " " | "-" | "+", text}] turning a into b (a
// longest common subsequence of lines).
export function lineDiff(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length, endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }
  const head = a.slice(0, start).map((text) => ({ op: " ", text }));
  const tail = a.slice(endA).map((text) => ({ op: " ", text }));
  const x = a.slice(start, endA), y = b.slice(start, endB);
  const n = x.length, m = y.length;
  const mid = [];
  if (n * m > MAX_CELLS) {
    mid.push(...x.map((text) => ({ op: "-", text })), ...y.map((text) => ({ op: "+", text })));
  } else {
    // lcs[i][j]: the longest common subsequence of x[i:] and y[j:].
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) { mid.push({ op: " ", text: x[i] }); i++; j++; }
      else if (lcs[i + 1][j] >= lcs[i][j + 1]) mid.push({ op: "-", text: x[i++] });
      else mid.push({ op: "+", text: y[j++] });
    }
    while (i < n) mid.push({ op: "-", text: x[i++] });
    while (j < m) mid.push({ op: "+", text: y[j++] });
  }
  return [...head, ...mid, ...tail];
}

const lines = (s) => (s === "" ? [] : s.replace(/\n$/, "").split("\n"));

// diffView renders the edit of one file. isNew: there was no old text.
export function diffView(path, oldText, newText, isNew) {
  const ops = lineDiff(lines(oldText), lines(newText));
  const added = ops.filter((o) => o.op === "+").length;
  const removed = ops.filter((o) => o.op === "-").length;
  // Keep CONTEXT unchanged lines around each change; fold the rest.
  const keep = ops.map(() => false);
  ops.forEach((o, i) => {
    if (o.op === " ") return;
    for (let k = Math.max(0, i - CONTEXT); k <= Math.min(ops.length - 1, i + CONTEXT); k++) keep[k] = true;
  });
  const rows = [];
  let folded = 0;
  const fold = () => {
    if (folded) rows.push(h("span", { class: "line fold" }, `⋯ ${folded} unchanged line${folded === 1 ? "" : "s"}\n`));
    folded = 0;
  };
  ops.forEach((o, i) => {
    if (!keep[i]) { folded++; return; }
    fold();
    const cls = o.op === "+" ? "add" : o.op === "-" ? "del" : "ctx";
    rows.push(h("span", { class: `line ${cls}` }, `${o.op} ${o.text}\n`));
  });
  fold();
  return h("div", { class: "diff", "data-path": path, "data-added": added, "data-removed": removed },
    h("div", { class: "diff-head" }, h("code", { class: "diff-path" }, path), " ",
      isNew ? h("span", { class: "badge" }, "new file") : "",
      h("span", { class: "diff-stat", "aria-label": `${added} lines added, ${removed} removed` }, `+${added} −${removed}`)),
    h("pre", { class: "diff-body" }, rows.length ? rows : h("span", { class: "line ctx" }, "(no change)")));
}
