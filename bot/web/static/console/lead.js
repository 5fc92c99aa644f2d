// The support lead's console: the dashboard, the knowledge-base editor and the unanswered questions.
"use strict";

(() => {
  const { api, el, flash } = Kefu;
  const $ = (id) => document.getElementById(id);
  let article = null; // the article open in the editor, as the API returned it

  // --- tabs ----------------------------------------------------------------------------------

  const tabs = ["dashboard", "articles", "gaps", "replies"];
  function show(name) {
    for (const t of tabs) {
      $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
      $(`panel-${t}`).hidden = t !== name;
    }
    if (name === "articles") loadArticles();
    if (name === "gaps") loadGaps();
    if (name === "replies") LeadReplies.load();
    history.replaceState(null, "", `#${name}`);
  }
  for (const t of tabs) $(`tab-${t}`).addEventListener("click", () => show(t));

  // --- dashboard -----------------------------------------------------------------------------

  // Parts of a whole, drawn as one bar each; lists a lead reads, shown open.
  const STACKED = new Set(["resolution_topics"]);
  const OPEN_TABLES = new Set(["unresolved_topics"]);

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  async function loadDashboard() {
    const from = $("from").value;
    const to = $("to").value;
    const started = performance.now();
    try {
      const data = await api("GET", `/api/dashboard?from=${from}&to=${to}`);
      $("dash-time").textContent = `${data.charts.length} charts in ${Math.round(performance.now() - started)} ms`;
      $("charts").replaceChildren(...data.charts.map((chart) => {
        chart.stacked = STACKED.has(chart.id);
        chart.open = OPEN_TABLES.has(chart.id);
        const headline = Charts.headline(chart);
        return el("figure", { class: "card", "data-chart": chart.id },
          el("figcaption", {}, el("strong", { text: chart.title }),
            el("a", { class: "csv", href: `/api/dashboard/${chart.id}.csv?from=${from}&to=${to}`, download: "", text: "CSV" })),
          headline ? el("p", { class: "muted", text: headline }) : null,
          Charts.render(chart),
          Charts.table(chart));
      }));
    } catch (e) {
      flash(e.message);
    }
  }

  $("range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadDashboard();
  });

  // --- articles ------------------------------------------------------------------------------

  async function loadArticles() {
    const q = $("kb-q").value.trim();
    const status = $("kb-status").value;
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (status) params.set("status", status);
    try {
      const data = await api("GET", `/api/kb/articles?${params}`);
      $("articles").replaceChildren(...data.articles.map((a) => el("li", {},
        el("button", { type: "button", class: "link", onclick: () => openArticle(a.slug), text: a.latest.title }),
        el("span", { class: `badge status-${a.status}`, text: a.status }),
        el("span", { class: "muted", text: ` v${a.latest_version}${a.published_version ? `, live v${a.published_version}` : ""}` }))));
    } catch (e) {
      flash(e.message);
    }
  }

  function fillEditor(view) {
    const v = view ? view.latest : { title: "", problem: "", solution: "", tags: [] };
    $("editor").hidden = false;
    $("ed-slug").value = view ? view.slug : "";
    $("ed-slug").readOnly = Boolean(view);
    $("ed-title").value = v.title;
    $("ed-problem").value = v.problem;
    $("ed-solution").value = v.solution;
    $("ed-tags").value = (v.tags || []).join(", ");
    $("ed-note").value = "";
    $("editor-title").textContent = view ? v.title : "New article";
    $("editor-state").textContent = view
      ? `Status ${view.status} · newest version v${view.latest_version} (${v.status})${view.published_version ? ` · customers get v${view.published_version}` : ""}`
      : "Not saved yet.";
    $("submit-review").hidden = !view || v.status !== "draft";
    // The review rule: another lead approves. The author sees that it is waiting, not a button
    // the server would refuse.
    const inReview = Boolean(view) && v.status === "in_review";
    const own = inReview && v.author_id !== null && Kefu.me && v.author_id === Kefu.me.id;
    $("publish").hidden = !inReview || own;
    $("awaiting-review").hidden = !own;
    $("archive").hidden = !view || view.status === "archived";
    $("diff").hidden = true;
  }

  async function openArticle(slug) {
    try {
      article = await api("GET", `/api/kb/articles/${encodeURIComponent(slug)}`);
      fillEditor(article);
      const data = await api("GET", `/api/kb/articles/${encodeURIComponent(slug)}/versions`);
      $("versions").replaceChildren(...data.versions.slice().reverse().map((v) => el("li", {},
        el("span", { text: `v${v.number} ${v.status} · ${Kefu.when(v.created_at)} · ${v.change_note || "no note"} ` }),
        v.number > 1 ? el("button", { type: "button", class: "link", onclick: () => showDiff(slug, v.number - 1, v.number), text: `changes from v${v.number - 1}` }) : null,
        v.number !== article.latest_version ? el("button", { type: "button", class: "link", onclick: () => revert(slug, v.number), text: "revert to this" }) : null)));
    } catch (e) {
      flash(e.message);
    }
  }

  async function showDiff(slug, from, to) {
    const data = await api("GET", `/api/kb/articles/${encodeURIComponent(slug)}/diff?from=${from}&to=${to}`);
    const text = Object.values(data.changes).join("\n") || "No changes.";
    $("diff").textContent = text;
    $("diff").hidden = false;
  }

  async function revert(slug, number) {
    try {
      await api("POST", `/api/kb/articles/${encodeURIComponent(slug)}/revert`, { to_version: number, base_version: article.latest_version });
      flash(`A new draft was made from v${number}; submit it for review to publish it.`, "ok");
      openArticle(slug);
    } catch (e) {
      flash(e.message);
    }
  }

  function content() {
    return {
      title: $("ed-title").value.trim(),
      problem: $("ed-problem").value.trim(),
      solution: $("ed-solution").value.trim(),
      tags: $("ed-tags").value.split(",").map((t) => t.trim()).filter(Boolean),
      change_note: $("ed-note").value.trim(),
    };
  }

  $("editor").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      if (!article) {
        const created = await api("POST", "/api/kb/articles", { slug: $("ed-slug").value.trim(), ...content() });
        flash("Draft saved.", "ok");
        await openArticle(created.slug);
      } else {
        await api("PATCH", `/api/kb/articles/${encodeURIComponent(article.slug)}`, { base_version: article.latest_version, ...content() });
        flash("Draft saved.", "ok");
        await openArticle(article.slug);
      }
      loadArticles();
    } catch (e) {
      flash(e.message);
    }
  });

  async function transition(name, message) {
    if (!article) return;
    try {
      await api("POST", `/api/kb/articles/${encodeURIComponent(article.slug)}/${name}`, name === "archive" ? {} : { version: article.latest_version });
      flash(message, "ok");
      await openArticle(article.slug);
      loadArticles();
    } catch (e) {
      flash(e.message);
    }
  }
  $("submit-review").addEventListener("click", () => transition("submit", "Submitted: another lead can now approve and publish it."));
  $("publish").addEventListener("click", () => transition("publish", "Published: the bot answers with it within a few seconds."));
  $("archive").addEventListener("click", () => {
    if (confirm("Archive this article? The bot stops using it.")) transition("archive", "Archived.");
  });
  $("new-article").addEventListener("click", () => { article = null; fillEditor(null); $("versions").replaceChildren(); $("ed-slug").focus(); });
  $("article-search").addEventListener("submit", (event) => { event.preventDefault(); loadArticles(); });

  // --- gaps ----------------------------------------------------------------------------------

  function gapCluster(c) {
    return el("li", { class: "card" },
      el("strong", { text: `${c.count} question${c.count === 1 ? "" : "s"}` }),
      el("span", { class: "muted", text: ` · first ${Kefu.when(c.first_seen)} · last ${Kefu.when(c.last_seen)}` }),
      el("ul", {}, ...c.items.map((item) => el("li", { class: "gap-item" },
        item.context.length
          ? el("ul", { class: "gap-context muted" }, ...item.context.map((turn) =>
            el("li", { text: `${turn.author === "customer" ? "Customer" : turn.author === "bot" ? "Bot" : "Agent"}: ${turn.text}` })))
          : null,
        el("span", { class: "gap-question", text: item.question })))),
      el("button", { type: "button", onclick: () => draftFrom(c.id), text: "Make a draft from this" }));
  }

  function fillGapList(id, items, render, empty) {
    $(id).replaceChildren(...(items.length ? items.map(render) : [el("li", { class: "muted", text: empty })]));
  }

  async function loadGaps() {
    try {
      const data = await api("GET", "/api/kb/gaps");
      fillGapList("gaps", data.no_answer, gapCluster, "Nothing here right now.");
      fillGapList("gaps-unhelpful", data.unhelpful, gapCluster, "Nothing here right now.");
      fillGapList("gaps-answered", data.answered, (a) => el("li", { class: "card" },
        el("span", { class: "gap-question", text: a.question }),
        el("span", { class: "muted", text: " · answered by " }),
        a.article
          ? el("button", { type: "button", class: "link", onclick: () => { show("articles"); openArticle(a.article.slug); }, text: a.article.title })
          : el("span", { text: "an article since removed" })), "No question has been answered by a new article yet.");
    } catch (e) {
      flash(e.message);
    }
  }

  async function draftFrom(id) {
    try {
      const created = await api("POST", `/api/kb/gaps/${id}/draft`, {});
      show("articles");
      await openArticle(created.slug);
      flash("A draft was made from these questions: write the solution, then submit it.", "ok");
    } catch (e) {
      flash(e.message);
    }
  }

  // --- start ---------------------------------------------------------------------------------

  const today = new Date();
  $("to").value = isoDay(today);
  $("from").value = isoDay(new Date(today.getTime() - 29 * 86400000));
  Kefu.whoAmI().then(() => {
    const start = location.hash.slice(1);
    show(tabs.includes(start) ? start : "dashboard");
    loadDashboard();
  }).catch((e) => flash(e.message));
})();
