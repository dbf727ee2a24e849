// Which optional server features exist. The console shows feedback, dataset and eval controls
// only when their endpoints answer, so it never offers what the server cannot do.

import { probe } from './api.js';

const PROBES = {
  feedback: 'score-configs',
  datasets: 'datasets',
  evals: 'evals/runs',
};

let capsPromise = null;

/** `{feedback, datasets, evals}` booleans, probed once per page load. */
export function capabilities() {
  if (!capsPromise) {
    capsPromise = Promise.all(Object.entries(PROBES).map(async ([name, path]) => [name, await probe(path)])).then(Object.fromEntries);
  }
  return capsPromise;
}
