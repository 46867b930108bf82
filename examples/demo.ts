// Isola's bundled example: one script, two MCP servers, calls in parallel.
// Run it with: isola --config examples/isola.json exec examples/demo.ts

interface Entry { name: string; path: string }

// List the data directory (server-filesystem; paths are relative to its allowed directory).
// Its structured result is { content: string } holding the tree as JSON text.
const { content } = await fs.directoryTree({ path: "." });
const tree = JSON.parse(content);
const files: Entry[] = [];
const walk = (node: any, dir: string) => {
  for (const child of node.children ?? node) {
    const path = `${dir}/${child.name}`;
    if (child.type === "directory") walk(child, path);
    else files.push({ name: child.name, path });
  }
};
walk(tree, ".");

// Read every file at once: the calls run concurrently, outside the sandbox.
const texts = await Promise.all(
  files.map(async (f) => (await fs.readTextFile({ path: f.path })).content),
);

// Keep the data here; return only what matters.
const stats = files.map((f, i) => ({ file: f.path, lines: texts[i].split("\n").filter(Boolean).length, first: texts[i].split("\n")[0] }));
stats.sort((a, b) => b.lines - a.lines);
const total = stats.reduce((n, s) => n + s.lines, 0);

// And a call to the other server.
const check = await everything.getSum({ a: total, b: 0 });
console.log(`read ${files.length} files, ${total} lines`);
return { largest: stats.slice(0, 3), check };
