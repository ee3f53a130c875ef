// Kubernetes labels and the equality-based selector (`matchLabels`, a Service's `spec.selector`).

export type Labels = Readonly<Record<string, string>>;

export const NO_LABELS: Labels = Object.freeze({});

/** True when every selector entry is present in `labels` with an equal value; an empty selector matches all. */
export function labelsMatch(selector: Labels, labels: Labels): boolean {
  for (const key in selector) {
    if (labels[key] !== selector[key]) return false;
  }
  return true;
}

/** True when the two label sets hold the same entries. */
export function labelsEqual(a: Labels, b: Labels): boolean {
  const aKeys = Object.keys(a);
  if (aKeys.length !== Object.keys(b).length) return false;
  return aKeys.every((key) => a[key] === b[key]);
}
