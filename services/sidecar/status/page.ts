/**
 * The admin listener's status page (`GET /`): one self-contained HTML document (inline CSS and
 * script, no CDN, no fonts, works offline) that renders `GET /status` and refreshes it live.
 */
import { STATUS_PAGE_SCRIPT } from './page-script.js';
import { STATUS_PAGE_CSS } from './page-style.js';

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mesh-sidecar status</title>
<link rel="icon" href="data:,">
<style>${STATUS_PAGE_CSS}</style>
</head>
<body>
<header>
  <h1>mesh-sidecar</h1>
  <span id="ready" class="badge muted">loading</span>
  <span id="meta" class="meta"></span>
  <span id="live" class="live offline">connecting</span>
</header>
<main>
  <noscript><section class="wide">This page needs JavaScript; the same data is at <a href="status">/status</a> as JSON.</section></noscript>
</main>
<script>${STATUS_PAGE_SCRIPT}</script>
</body>
</html>
`;
