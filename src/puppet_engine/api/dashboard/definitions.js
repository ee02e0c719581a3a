/* Puppet Engine dashboard: an agent whose file edit was refused (agents directory watched).
 *
 * The agent keeps running its previous version; the flag says which file, since when and every
 * problem found (file: field: what was expected), until a valid version is saved.
 * Untrusted text only ever goes through textContent.
 */
"use strict";

window.PuppetDefinitions = (() => {
  const { h, ago } = window.PuppetLib;

  // The flag for an agent (summary or detail), or null when its file is fine.
  function flag(agent) {
    const error = agent.definition_error;
    if (!error) return null;
    const problems = error.problems || [];
    const name = String(error.file || "").split(/[\\/]/).pop();
    return h("div", { class: "definition-error", role: "alert", title: error.file },
      h("p", { class: "definition-error-head",
               text: `✎ Edit of ${name} refused ${ago(error.since)}; the previous version keeps running` }),
      h("ul", {}, ...problems.map((p) => h("li", { text: p }))));
  }

  return { flag };
})();
