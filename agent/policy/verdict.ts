// Moved to core/authz/verdict.ts, which the node agent and the waypoint share; re-exported here so
// existing imports keep working.
export * from '../../core/authz/verdict.js';
