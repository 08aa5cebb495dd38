/**
 * Loading plain `.wgsl` files from `shaders/`, relative to this module, so that it works from
 * a local checkout (file:) and when `mod.ts` is imported from an `http(s)://` URL.
 * @module
 */

const sources = new Map<string, Promise<string>>();

/** The text of `shaders/<name>`, fetched once per process. */
export function shaderSource(name: string): Promise<string> {
  let text = sources.get(name);
  if (!text) {
    const url = new URL(`../../shaders/${name}`, import.meta.url);
    text = fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`Cannot load shader ${url}: HTTP ${response.status}`);
      return await response.text();
    });
    sources.set(name, text);
    text.catch(() => sources.delete(name));
  }
  return text;
}
