// The lead console's customer-value section: equity and loyalty charts, and the win-back list.
// Kept apart from lead.js: these figures describe the base today, not the dashboard's date range.
"use strict";

(() => {
  const { api, el, flash } = Kefu;
  const $ = (id) => document.getElementById(id);

  async function loadValueCharts() {
    try {
      const data = await api("GET", "/api/value/charts");
      $("value-charts").replaceChildren(...data.charts.map((chart) => {
        const headline = Charts.headline(chart);
        return el("figure", { class: "card", "data-value-chart": chart.id },
          el("figcaption", {}, el("strong", { text: chart.title }),
            el("a", { class: "csv", href: `/api/value/${chart.id}.csv`, download: "", text: "CSV" })),
          headline ? el("p", { class: "muted", text: headline }) : null,
          Charts.render(chart),
          Charts.table(chart));
      }));
    } catch (e) {
      flash(e.message);
    }
  }

  function euros(value) {
    return value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  async function loadWinback() {
    const params = new URLSearchParams();
    if ($("wb-stage").value) params.set("stage", $("wb-stage").value);
    if ($("wb-reason").value) params.set("reason", $("wb-reason").value);
    $("winback-csv").href = `/api/value/winback.csv?${params}`;
    try {
      const data = await api("GET", `/api/value/winback?${params}`);
      $("winback-count").textContent = `${data.customers.length} customer${data.customers.length === 1 ? "" : "s"}`;
      $("winback").querySelector("tbody").replaceChildren(...data.customers.map((c) => el("tr", { "data-customer": c.customer_id },
        el("td", {}, el("span", { text: c.name }), el("br"), el("span", { class: "muted", text: c.email })),
        el("td", { text: c.stage }),
        el("td", { text: c.tier }),
        el("td", { text: euros(c.value_if_won_back_eur) }),
        el("td", { text: euros(c.value_to_date_eur) }),
        el("td", { text: c.details }))));
    } catch (e) {
      flash(e.message);
    }
  }

  $("winback-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadWinback();
  });
  // lead.js checks the login (and sends a stranger to the login page); these only read.
  loadValueCharts();
  loadWinback();
})();
