// Small SVG charts for the dashboard, no library: grouped horizontal bars and a line chart.
// Each chart also gets its numbers as a table, for screen readers and for checking by eye.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#2f6fde", "#e0822f", "#3a9d5d", "#b0413e"];

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function numericColumns(chart) {
    return chart.columns
      .map((name, i) => ({ name, i }))
      .filter(({ i }) => i > 0 && chart.rows.some((r) => typeof r[i] === "number"));
  }

  function bars(chart) {
    // Percentages and counts are in the table; bars show the measure itself when there is one.
    const series = numericColumns(chart).filter(({ name }) => !/(percent|count)$/.test(name) || numericColumns(chart).length === 1);
    const shown = series.length ? series : numericColumns(chart);
    const rowHeight = 14 * shown.length + 10;
    const width = 520;
    const labelWidth = 170;
    const height = Math.max(40, chart.rows.length * rowHeight + 24);
    const max = Math.max(1, ...chart.rows.flatMap((r) => shown.map(({ i }) => Number(r[i]) || 0)));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": chart.title, class: "chart" });
    chart.rows.forEach((row, r) => {
      const y = r * rowHeight + 4;
      root.append(svg("text", { x: 0, y: y + 11, class: "chart__label" }, String(row[0]).slice(0, 28)));
      shown.forEach(({ i }, s) => {
        const value = Number(row[i]) || 0;
        const w = ((width - labelWidth - 60) * value) / max;
        root.append(svg("rect", { x: labelWidth, y: y + s * 14, width: Math.max(w, 1), height: 12, fill: COLOURS[s % COLOURS.length] }));
        root.append(svg("text", { x: labelWidth + w + 4, y: y + s * 14 + 10, class: "chart__value" }, row[i] === null ? "–" : String(row[i])));
      });
    });
    if (shown.length > 1) {
      shown.forEach(({ name }, s) => {
        root.append(svg("rect", { x: labelWidth + s * 120, y: height - 12, width: 10, height: 10, fill: COLOURS[s] }));
        root.append(svg("text", { x: labelWidth + s * 120 + 14, y: height - 3, class: "chart__value" }, name));
      });
    }
    return root;
  }

  function line(chart) {
    const series = numericColumns(chart);
    const width = 520;
    const height = 180;
    const pad = 30;
    const n = chart.rows.length;
    const max = Math.max(1, ...chart.rows.flatMap((r) => series.map(({ i }) => Number(r[i]) || 0)));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": chart.title, class: "chart" });
    root.append(svg("line", { x1: pad, y1: height - pad, x2: width, y2: height - pad, stroke: "#999" }));
    root.append(svg("text", { x: 0, y: 12, class: "chart__value" }, String(max)));
    series.forEach(({ i, name }, s) => {
      const points = chart.rows.map((row, k) => {
        const x = pad + (n === 1 ? 0 : ((width - pad) * k) / (n - 1));
        const y = height - pad - ((height - 2 * pad) * (Number(row[i]) || 0)) / max;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: COLOURS[s], "stroke-width": 2 }));
      root.append(svg("text", { x: pad + s * 150, y: height - 6, class: "chart__value", fill: COLOURS[s] }, name));
    });
    if (n) {
      root.append(svg("text", { x: pad, y: height - pad + 14, class: "chart__value" }, String(chart.rows[0][0])));
      root.append(svg("text", { x: width - 70, y: height - pad + 14, class: "chart__value" }, String(chart.rows[n - 1][0])));
    }
    return root;
  }

  function table(chart) {
    const { el } = Kefu;
    const rows = chart.kind === "line" && chart.rows.length > 14 ? chart.rows.slice(-14) : chart.rows;
    return el("details", { class: "chart__table" },
      el("summary", { text: chart.kind === "line" && rows !== chart.rows ? "Numbers (last 14 days; all in the CSV)" : "Numbers" }),
      el("table", {},
        el("thead", {}, el("tr", {}, ...chart.columns.map((c) => el("th", { scope: "col", text: c })))),
        el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((v) => el("td", { text: v === null ? "–" : String(v) }))))),
      ));
  }

  function render(chart) {
    return chart.kind === "line" ? line(chart) : bars(chart);
  }

  return { render, table };
})();
