"""The clinician console: server-rendered page shells and card templates, ES modules, one CSS
file — served at ``/`` by every agent (see docs/console.md)."""
