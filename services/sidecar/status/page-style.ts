/** The status page's stylesheet: inline, no web fonts, light and dark by the system setting. */
export const STATUS_PAGE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --card: #ffffff; --fg: #1c2330; --muted: #5d6778; --line: #dde1e8;
  --ok: #17803d; --ok-bg: #e3f5e9; --bad: #b42318; --bad-bg: #fde8e6; --warn: #9a5b00; --warn-bg: #fff2d6;
  --accent: #2f5bd3;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12151b; --card: #1a1f27; --fg: #e4e8ef; --muted: #98a2b3; --line: #2c333e;
    --ok: #5ad17f; --ok-bg: #173222; --bad: #ff8a7a; --bad-bg: #3a1a17; --warn: #ffc35c; --warn-bg: #3a2c12;
    --accent: #8aa8ff;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 20px; padding: 14px 24px;
  background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header h1 { font-size: 18px; margin: 0; font-weight: 650; }
header .meta { color: var(--muted); font-size: 13px; }
header .live { margin-left: auto; color: var(--muted); font-size: 13px; }
header .live::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  background: var(--ok); margin-right: 6px; vertical-align: middle; }
header .live.offline::before { background: var(--bad); }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; padding: 16px 24px 32px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
section h2 { font-size: 15px; margin: 0 0 8px; font-weight: 650; }
section h3 { font-size: 14px; margin: 12px 0 6px; font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.muted { color: var(--muted); border: 1px solid var(--line); }
.sub { border-top: 1px solid var(--line); padding-top: 8px; margin-top: 8px; }
.sub:first-of-type { border-top: 0; margin-top: 0; padding-top: 0; }
.kv { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 4px 0 6px; color: var(--muted); }
.kv b { color: var(--fg); font-weight: 600; }
.error-text { color: var(--bad); }
pre { margin: 0; white-space: pre-wrap; overflow-x: auto; }
`;
