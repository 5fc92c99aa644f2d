// Small SVG charts for the dashboard, no library: horizontal bars (grouped or stacked) and line
// charts with axes. The API speaks in code names and minutes; everything a lead reads here is put
// in words ("Median time", "Wrong or missing item") and durations in minutes, hours and days.
// Each chart also gets its numbers as a table, for screen readers and for checking by eye.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#2f6fde", "#e0822f", "#3a9d5d", "#b0413e", "#7b5ea7", "#8a8f98"];
  // The resolution categories keep their colours on every chart: good green, bad red.
  const FIXED = {
    confirmed: "#2e7d46", assumed: "#8cc084", not_resolved: "#c0392b", handed: "#e0822f",
    pending: "#a0a6ad", conversations: "#2f6fde", handed_to_person: "#e0822f",
  };
  // ... and so do the rows of the chart of how conversations ended.
  const ROW_COLOURS = {
    confirmed: FIXED.confirmed, assumed: FIXED.assumed, "not resolved": FIXED.not_resolved,
    "handed to a person": FIXED.handed,
  };
  // Words for the API's column names, headline keys and values. Anything not here is spelt out
  // from its code name ("product_defect" -> "Product defect").
  const WORDS = {
    date: "Day", week: "Week starting", conversations: "Conversations", handed_to_person: "Handed to a person",
    outcome: "Outcome", percent: "Share", measure: "Measure", median_minutes: "Median time",
    p90_minutes: "9 in 10 within", count: "Measured", target: "Target", met: "Met", missed: "Missed",
    compliance_percent: "Compliance", score: "Score", answers: "Answers", category: "Category",
    complaints: "Complaints", channel: "Channel", tier: "Value tier", customers: "Customers",
    stage: "Life-cycle stage", confirmed: "Confirmed", assumed: "Assumed", not_resolved: "Not resolved",
    handed: "Handed to a person", pending: "Pending (less than 24 h)", containment_percent: "Containment",
    topic: "Topic", why: "Why", example: "Example message",
    // headline figures
    average_per_day: "Average per day", busiest_day: "Busiest day", confirmed_percent: "Confirmed",
    escalation_rate_percent: "Handed to a person", classified: "Classified", periods: "Periods",
    per: "Per", topics: "Topics", unanswered: "Unanswered", unhelpful: "Didn't help",
    chat_first_response_median_minutes: "Chat first response, median",
    ticket_first_response_median_minutes: "Ticket first response, median",
    ticket_resolution_median_minutes: "Ticket resolution, median",
    first_response_compliance_percent: "First response on time", resolution_compliance_percent: "Resolved on time",
    satisfied_percent: "Satisfied (4-5)", top_category: "Top category", channels: "Channels", vip: "VIP",
    declining: "Declining",
    // customer value
    equity_eur: "Equity (EUR)", value_to_date_eur: "Margin so far (EUR)", customer_count: "Customers",
    repeat_purchase_rate: "Repeat purchase rate", churn_rate: "Churn rate",
    top_10_percent_revenue_share: "Revenue from the top 10% of customers",
    top_20_percent_revenue_share: "Revenue from the top 20% of customers",
    // values
    web: "Web chat", telegram: "Telegram", key: "Key", regular: "Regular", website_app: "Website or app",
    wrong_or_missing_item: "Wrong or missing item", staff_attitude: "How staff treated the customer",
    "no answer": "No answer", "out of scope": "Out of scope", other: "Other",
  };
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function words(code) {
    if (code === null || code === undefined) return "–";
    const text = String(code);
    if (Object.hasOwn(WORDS, text)) return WORDS[text];
    if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return day(text, true);
    const spaced = text.replaceAll("_", " ").replaceAll("-", " ");
    return spaced.charAt(0).toUpperCase() + spaced.slice(1);
  }

  function day(iso, withYear) {
    const [y, m, d] = iso.split("-").map(Number);
    return `${d} ${MONTHS[m - 1]}${withYear ? ` ${y}` : ""}`;
  }

  // 45 -> "45 min", 185 -> "3 h 5 min", 7655.7 -> "5 d 7 h"
  function duration(minutes) {
    if (minutes === null || minutes === undefined) return "–";
    const m = Math.round(Number(minutes));
    if (m < 1) return "under 1 min";
    if (m < 60) return `${m} min`;
    if (m < 24 * 60) {
      const rest = m % 60;
      return `${Math.floor(m / 60)} h${rest ? ` ${rest} min` : ""}`;
    }
    const hours = Math.round(m / 60);
    const rest = hours % 24;
    return `${Math.floor(hours / 24)} d${rest ? ` ${rest} h` : ""}`;
  }

  function isDuration(name, chart) {
    return /_minutes$/.test(name) && (chart ? chart.unit === "minutes" || /median|p90/.test(name) : true);
  }

  function number(value) {
    return typeof value === "number" ? value.toLocaleString("en-GB") : words(value);
  }

  // A cell or headline value as a lead reads it.
  function shown(name, value, chart) {
    if (value === null || value === undefined) return "–";
    if (isDuration(name, chart)) return duration(value);
    if (/percent$/.test(name)) return `${value}%`;
    if (typeof value === "number") return number(value);
    if (name === "example") return String(value);
    return words(value);
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function colour(name, s) {
    return FIXED[name] || COLOURS[s % COLOURS.length];
  }

  function numericColumns(chart) {
    return chart.columns
      .map((name, i) => ({ name, i }))
      .filter(({ i }) => i > 0 && chart.rows.some((r) => typeof r[i] === "number"));
  }

  // What is drawn: the measures themselves; shares and counts of a measured thing stay in the table.
  function drawnSeries(chart) {
    const all = numericColumns(chart);
    const measures = all.filter(({ name }) => !/(percent|count)$/.test(name));
    return measures.length ? measures : all;
  }

  function legend(series) {
    const { el } = Kefu;
    return el("ul", { class: "chart__legend" }, ...series.map(({ name }, s) => {
      const key = el("span", { class: "chart__key", "aria-hidden": "true" });
      key.style.backgroundColor = colour(name, s); // through the CSSOM: the page's CSP refuses style=""
      return el("li", {}, key, words(name));
    }));
  }

  function rowLabel(chart, row) {
    const label = words(row[0]);
    const why = chart.columns.indexOf("why");
    return why > 0 ? `${label} (${words(row[why]).toLowerCase()})` : label;
  }

  function bars(chart) {
    const series = drawnSeries(chart);
    const stacked = chart.stacked && series.length > 1;
    const lane = stacked ? 14 : 14 * series.length;
    const rowHeight = lane + 10;
    const width = 560;
    const labelWidth = 190;
    const room = width - labelWidth - 80;
    const height = Math.max(40, chart.rows.length * rowHeight + 8);
    const total = (r) => series.reduce((sum, { i }) => sum + (Number(r[i]) || 0), 0);
    const max = Math.max(1, ...chart.rows.map((r) => (stacked ? total(r) : Math.max(...series.map(({ i }) => Number(r[i]) || 0)))));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": chart.title, class: "chart" });
    chart.rows.forEach((row, r) => {
      const y = r * rowHeight + 4;
      root.append(svg("text", { x: 0, y: y + 11, class: "chart__label" }, rowLabel(chart, row).slice(0, 32)));
      let x = labelWidth;
      series.forEach(({ i, name }, s) => {
        const value = Number(row[i]) || 0;
        const w = (room * value) / max;
        const top = stacked ? y : y + s * 14;
        const fill = series.length === 1 && ROW_COLOURS[row[0]] ? ROW_COLOURS[row[0]] : colour(name, s);
        const bar = svg("rect", { x, y: top, width: Math.max(w, value ? 1 : 0), height: 12, fill });
        bar.append(svg("title", {}, `${words(name)}: ${shown(name, row[i], chart)}`));
        root.append(bar);
        if (stacked) x += w;
        else root.append(svg("text", { x: labelWidth + w + 4, y: top + 10, class: "chart__value" }, shown(name, row[i], chart)));
      });
      if (stacked) root.append(svg("text", { x: x + 4, y: y + 10, class: "chart__value" }, number(total(row))));
    });
    return root;
  }

  // Round numbers for an axis from 0 to at least `max`: 0, 5, 10, ... or 0, 20, 40, ...
  function ticks(max) {
    const raw = max / 4;
    const power = 10 ** Math.floor(Math.log10(raw || 1));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((f) => f >= raw) || power * 10;
    const values = [];
    for (let v = 0; v <= max + step * 0.999; v += step) values.push(Math.round(v * 100) / 100);
    return values;
  }

  function line(chart) {
    const series = drawnSeries(chart);
    const width = 560;
    const height = 220;
    const left = 44;
    const bottom = 24;
    const top = 10;
    const n = chart.rows.length;
    const peak = Math.max(1, ...chart.rows.flatMap((r) => series.map(({ i }) => Number(r[i]) || 0)));
    const axis = ticks(peak);
    const max = axis[axis.length - 1];
    const plotW = width - left - 10;
    const plotH = height - top - bottom;
    const xAt = (k) => left + (n === 1 ? plotW / 2 : (plotW * k) / (n - 1));
    const yAt = (v) => top + plotH - (plotH * v) / max;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": chart.title, class: "chart" });
    for (const v of axis) {
      root.append(svg("line", { x1: left, y1: yAt(v), x2: width - 10, y2: yAt(v), class: "chart__grid" }));
      root.append(svg("text", { x: left - 6, y: yAt(v) + 4, class: "chart__value chart__tick--y", "text-anchor": "end" }, number(v)));
    }
    root.append(svg("line", { x1: left, y1: top + plotH, x2: width - 10, y2: top + plotH, stroke: "#666" }));
    root.append(svg("line", { x1: left, y1: top, x2: left, y2: top + plotH, stroke: "#666" }));
    // About six dates along the bottom, the first and the last always.
    const every = Math.max(1, Math.ceil(n / 6));
    chart.rows.forEach((row, k) => {
      if (k % every !== 0 && k !== n - 1) return;
      if (k !== n - 1 && n - 1 - k < every / 2) return; // too close to the last one
      root.append(svg("line", { x1: xAt(k), y1: top + plotH, x2: xAt(k), y2: top + plotH + 4, stroke: "#666" }));
      // The first and last labels stay inside the drawing.
      const anchor = n > 1 && k === 0 ? "start" : n > 1 && k === n - 1 ? "end" : "middle";
      root.append(svg("text", { x: xAt(k), y: top + plotH + 16, class: "chart__value chart__tick--x", "text-anchor": anchor },
        /^\d{4}-\d{2}-\d{2}$/.test(String(row[0])) ? day(String(row[0]), false) : String(row[0])));
    });
    series.forEach(({ i, name }, s) => {
      const points = chart.rows.map((row, k) => `${xAt(k).toFixed(1)},${yAt(Number(row[i]) || 0).toFixed(1)}`);
      const path = svg("polyline", { points: points.join(" "), fill: "none", stroke: colour(name, s), "stroke-width": 2 });
      path.append(svg("title", {}, words(name)));
      root.append(path);
    });
    return root;
  }

  function table(chart) {
    const { el } = Kefu;
    const long = chart.kind === "line" && chart.rows.length > 14;
    const rows = long ? chart.rows.slice(-14) : chart.rows;
    return el("details", { class: "chart__table", open: chart.open ? "" : null },
      el("summary", { text: long ? "Numbers (the last 14; all in the CSV)" : "Numbers" }),
      el("table", {},
        el("thead", {}, el("tr", {}, ...chart.columns.map((c) => el("th", { scope: "col", text: words(c) })))),
        el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((v, i) => el("td", { text: shown(chart.columns[i], v, chart) })))))));
  }

  function headline(chart) {
    return Object.entries(chart.headline || {})
      .map(([k, v]) => `${words(k)}: ${k === "busiest_day" && v ? day(v, true) : shown(k, v)}`)
      .join(" · ");
  }

  function render(chart) {
    const { el } = Kefu;
    const series = drawnSeries(chart);
    const drawing = chart.kind === "line" ? line(chart) : bars(chart);
    const keyed = chart.kind === "line" || series.length > 1;
    return el("div", { class: "chart__body" }, drawing, keyed ? legend(series) : null);
  }

  return { render, table, headline, duration, words };
})();
