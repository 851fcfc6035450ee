/* The HTTP API, through fetch with the session cookie. */

/** One request; resolves to {status, data (parsed JSON or null), headers}; rejects offline. */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  const type = resp.headers.get("Content-Type") || "";
  if (resp.status !== 204 && type.includes("json")) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  return { status: resp.status, data, headers: resp.headers };
}

/** The server's own words for a failure ({"error": {"message"}}), else `fallback`. */
export function errorMessage(res, fallback) {
  return (res.data && res.data.error && res.data.error.message) || fallback;
}

/** How long to wait after a 429: the body's retry_after, else Retry-After; at least 1 s. */
export function retryAfterSeconds(res) {
  const body = res.data && res.data.error && res.data.error.retry_after;
  const header = Number(res.headers.get("Retry-After"));
  const value = Number(body) || header || 0;
  return Math.max(1, Math.ceil(value));
}
