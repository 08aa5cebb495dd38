import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { bytesTokenizer, encodeDocuments, gpt2Tokenizer } from "../lib/data/tokenizer.ts";
import { sotuDocuments } from "../lib/data/sotu.ts";
import { loadTokens } from "../lib/data/source.ts";
import { encodeShard } from "../lib/data/shard.ts";
import { cacheDir } from "../lib/data/cache.ts";

Deno.test("GPT-2 BPE from js-tiktoken's bundled ranks: known ids, round trip, specials as text", async () => {
  const gpt2 = await gpt2Tokenizer();
  deepStrictEqual([...gpt2.encode("Hello world")], [15496, 995]);
  const text = "Fellow-Citizens of the Senate — 1790 ünïcödé <|endoftext|>";
  deepStrictEqual(gpt2.decode(gpt2.encode(text)), text);
  ok(!gpt2.encode("<|endoftext|>").includes(50256), "special-token text stays text");
  deepStrictEqual(
    [...encodeDocuments(gpt2, ["Hello", " world"])],
    [15496, 50256, 995, 50256],
  );
  deepStrictEqual([...encodeDocuments(bytesTokenizer, ["hé"])], [104, 195, 169, 10, 10]);
  deepStrictEqual(bytesTokenizer.decode(bytesTokenizer.encode("hé")), "hé");
});

Deno.test("SOTU corpus loads from npm, oldest first, and caches as a shard", async () => {
  const docs = await sotuDocuments();
  deepStrictEqual(docs.length, 233);
  ok(docs[0].startsWith("Fellow-Citizens of the Senate and House of Representatives"));
  const dir = await Deno.makeTempDir();
  try {
    const first = await loadTokens(bytesTokenizer, { cache: dir });
    ok(first.description.includes("tokenized into"), first.description);
    const chars = docs.reduce((n, d) => n + new TextEncoder().encode(d).length + 2, 0);
    deepStrictEqual(first.tokens.length, chars);
    const second = await loadTokens(bytesTokenizer, { cache: dir });
    ok(second.description.startsWith(`sotu (cached ${dir}/sotu-bytes-v1.tok`), second.description);
    deepStrictEqual(Uint32Array.from(second.tokens), Uint32Array.from(first.tokens));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--data takes a text file (tokenized, cached by content) or a token shard", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = `${dir}/my corpus.txt`;
    await Deno.writeTextFile(text, "abc");
    const a = await loadTokens(bytesTokenizer, { data: text, cache: `${dir}/cache` });
    deepStrictEqual([...a.tokens], [97, 98, 99, 10, 10]);
    const again = await loadTokens(bytesTokenizer, { data: text, cache: `${dir}/cache` });
    ok(again.description.includes("cached"), again.description);
    const shard = `${dir}/data.tok`;
    await Deno.writeFile(shard, encodeShard([5, 6, 7], { vocabSize: 256, tokenizer: "bytes" }));
    deepStrictEqual([...(await loadTokens(bytesTokenizer, { data: shard, cache: dir })).tokens], [
      5,
      6,
      7,
    ]);
    const gpt2 = await gpt2Tokenizer();
    await rejects(
      () => loadTokens(gpt2, { data: shard, cache: dir }),
      /Token shard .*data.tok was made with tokenizer "bytes" but the model uses "gpt2"/,
    );
    await Deno.writeFile(
      `${dir}/bad.tok`,
      new TextEncoder().encode(
        "not a shard, just text.....................................................",
      ),
    );
    await rejects(
      () => loadTokens(bytesTokenizer, { data: `${dir}/bad.tok` }),
      /bad.tok is not a valid LASP token shard: bad magic/,
    );
    await Deno.writeFile(`${dir}/bin.dat`, Uint8Array.of(0xff, 0xfe, 0x00));
    await rejects(
      () => loadTokens(bytesTokenizer, { data: `${dir}/bin.dat` }),
      /bin.dat is neither a LASP token shard nor UTF-8 text/,
    );
    await rejects(
      () => loadTokens(bytesTokenizer, { data: `${dir}/missing.txt` }),
      /Cannot read --data .*missing.txt/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cache directory: $LASP_CACHE, then $XDG_CACHE_HOME/lasp, then ~/.cache/lasp", () => {
  const saved = ["LASP_CACHE", "XDG_CACHE_HOME", "HOME"].map((k) => [k, Deno.env.get(k)] as const);
  try {
    Deno.env.set("LASP_CACHE", "/c");
    deepStrictEqual(cacheDir(), "/c");
    Deno.env.delete("LASP_CACHE");
    Deno.env.set("XDG_CACHE_HOME", "/x");
    deepStrictEqual(cacheDir(), "/x/lasp");
    Deno.env.delete("XDG_CACHE_HOME");
    Deno.env.set("HOME", "/h");
    deepStrictEqual(cacheDir(), "/h/.cache/lasp");
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});
