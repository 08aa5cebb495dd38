import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { escapeXml, lossCurveSvg, niceTicks } from "../lib/cli/svg.ts";

/**
 * Checks XML well-formedness the strict way a parser would: one root, every tag closed in
 * order, attributes quoted and unique, no stray `<` or unescaped `&`. Returns the elements
 * as {name, attrs} in document order.
 */
function parseXml(text: string): { name: string; attrs: Record<string, string> }[] {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, "");
  const stack: string[] = [], elements: { name: string; attrs: Record<string, string> }[] = [];
  let roots = 0, i = 0;
  const checkText = (t: string) => {
    if (t.includes("<") || t.includes(">")) throw new Error(`stray bracket in "${t}"`);
    if (/&(?!(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos);)/i.test(t)) throw new Error(`bare & in ${t}`);
  };
  while (i < body.length) {
    const open = body.indexOf("<", i);
    if (open < 0) {
      checkText(body.slice(i));
      if (body.slice(i).trim() !== "") throw new Error("text after the root");
      break;
    }
    checkText(body.slice(i, open));
    const close = body.indexOf(">", open);
    if (close < 0) throw new Error("unterminated tag");
    const tag = body.slice(open + 1, close);
    i = close + 1;
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
      continue;
    }
    const selfClosing = tag.endsWith("/");
    const m = (selfClosing ? tag.slice(0, -1) : tag).match(/^([A-Za-z][\w:-]*)(.*)$/s);
    if (!m) throw new Error(`bad tag <${tag}>`);
    const attrs: Record<string, string> = {};
    let rest = m[2].trim();
    while (rest) {
      const a = rest.match(/^([A-Za-z_:][\w:.-]*)="([^"<]*)"\s*/);
      if (!a) throw new Error(`bad attribute in <${tag}>`);
      if (a[1] in attrs) throw new Error(`duplicate attribute ${a[1]}`);
      checkText(a[2]);
      attrs[a[1]] = a[2];
      rest = rest.slice(a[0].length);
    }
    if (stack.length === 0) roots++;
    elements.push({ name: m[1], attrs });
    if (!selfClosing) stack.push(m[1]);
  }
  if (stack.length) throw new Error(`unclosed <${stack.at(-1)}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return elements;
}

Deno.test("the XML checker of this test rejects malformed documents", () => {
  throws(() => parseXml("<svg><g></svg>"), /mismatched/);
  throws(() => parseXml("<svg a=1/>"), /bad attribute/);
  throws(() => parseXml("<svg>a & b</svg>"), /bare &/);
  throws(() => parseXml("<svg/><svg/>"), /2 root/);
  deepStrictEqual(parseXml('<svg a="1"><g/></svg>').map((e) => e.name), ["svg", "g"]);
});

function polyline(svg: string, id: string): [number, number][] {
  const el = parseXml(svg).find((e) => e.name === "polyline" && e.attrs.id === id)!;
  return el.attrs.points.split(" ").map((p) => p.split(",").map(Number) as [number, number]);
}

Deno.test("loss curve SVG is well-formed and holds every train and validation point", () => {
  const train = Array.from(
    { length: 57 },
    (_, i) => ({ step: i + 1, loss: 5 * Math.exp(-i / 20) }),
  );
  const val = [10, 20, 30, 40, 50, 57].map((step) => ({ step, loss: 5 * Math.exp(-step / 25) }));
  const svg = lossCurveSvg({ train, val }, { title: "tiny <tnl> & sp=2", width: 640 });
  const elements = parseXml(svg);
  deepStrictEqual(elements[0].name, "svg");
  deepStrictEqual(elements[0].attrs.width, "640");
  ok(svg.includes("tiny &#60;tnl&#62; &#38; sp=2"));
  const t = polyline(svg, "train"), v = polyline(svg, "val");
  deepStrictEqual([t.length, v.length], [57, 6]);
  deepStrictEqual(elements.filter((e) => e.name === "circle").length, 6);
  // Later steps lie further right; lower losses lie lower (larger y) — the map is monotone.
  for (let i = 1; i < t.length; i++) ok(t[i][0] > t[i - 1][0] && t[i][1] > t[i - 1][1]);
  // Points stay inside the canvas; the extremes touch the plot's padded range.
  for (const [x, y] of [...t, ...v]) ok(x >= 0 && x <= 640 && y >= 0 && y <= 420);
  // A validation point at the same step and loss as a train point lands on the same spot.
  const same = lossCurveSvg({ train, val: [train[9]] });
  deepStrictEqual(polyline(same, "val")[0], polyline(same, "train")[9]);
});

Deno.test("loss curve SVG copes with one point, no validation and non-finite losses", () => {
  const svg = lossCurveSvg({ train: [{ step: 1, loss: 3 }, { step: 2, loss: NaN }] });
  parseXml(svg);
  deepStrictEqual(polyline(svg, "train").length, 1);
  ok(!svg.includes('id="val"'));
  parseXml(lossCurveSvg({ train: [] }));
});

Deno.test("nice ticks are round and cover the range", () => {
  deepStrictEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  deepStrictEqual(niceTicks(2.13, 5.6, 6), [2.5, 3, 3.5, 4, 4.5, 5, 5.5]);
  deepStrictEqual(niceTicks(0.01, 0.093, 4), [0.02, 0.04, 0.06, 0.08]);
  deepStrictEqual(niceTicks(1, 200, 8), [20, 40, 60, 80, 100, 120, 140, 160, 180, 200]);
  deepStrictEqual(escapeXml(`a<b>&"'`), "a&#60;b&#62;&#38;&#34;&#39;");
});
