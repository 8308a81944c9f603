// Runs one test function of a shared test module on MicroPython WebAssembly (npm
// @micropython/micropython-webassembly-pyscript, the same build a browser loads), as tests/conftest.py asks:
//     node tests/wasm_runner.mjs REPO_DIR TEST_FILE TEST_NAME [DATA_FILE ...]
// The shared package (sensorbox/__init__.py and sensorbox/shared/*.py) and the test file are written into the
// runtime's file system under /lib; the DATA_FILEs (paths relative to the repo, listed in the test module's
// DATA_FILES) are copied to /repo, the working directory, so tests open them by the same relative path
// as on CPython and the unix port; an absolute path (data a Debian package installed) is copied to itself.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { readFileSync, readdirSync } from "node:fs";
import { join, basename } from "node:path";

const [repo, testFile, testName, ...dataFiles] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ stdout: (s) => { out += s + "\n"; }, heapsize: 4 * 1024 * 1024 });
mp.FS.mkdir("/lib");
mp.FS.mkdir("/lib/sensorbox");
mp.FS.mkdir("/lib/sensorbox/shared");
mp.FS.writeFile("/lib/sensorbox/__init__.py", readFileSync(join(repo, "sensorbox/__init__.py")));
for (const f of readdirSync(join(repo, "sensorbox/shared"))) {
  if (f.endsWith(".py")) {
    mp.FS.writeFile("/lib/sensorbox/shared/" + f, readFileSync(join(repo, "sensorbox/shared", f)));
  }
}
const mod = basename(testFile, ".py");
mp.FS.writeFile("/lib/" + mod + ".py", readFileSync(testFile));
// the tests' random numbers (tests/support/testrng.py), which shared tests import
mp.FS.writeFile("/lib/testrng.py", readFileSync(join(repo, "tests/support/testrng.py")));
mp.FS.mkdir("/repo");
for (const rel of dataFiles) {
  // an absolute path (a file a system package installed) keeps its path; others go under /repo
  const abs = rel.startsWith("/");
  let dir = abs ? "" : "/repo";
  for (const part of rel.split("/").slice(abs ? 1 : 0, -1)) {
    dir += "/" + part;
    try { mp.FS.mkdir(dir); } catch (e) { /* exists */ }
  }
  mp.FS.writeFile(abs ? rel : "/repo/" + rel, readFileSync(abs ? rel : join(repo, rel)));
}
mp.FS.chdir("/repo");
try {
  mp.runPython(`
import sys
sys.path.insert(0, "/lib")
import ${mod}
_r = ${mod}.${testName}()
if _r is not None and hasattr(_r, "send"):
    raise TypeError("shared tests must be synchronous (the WebAssembly port has no asyncio.run)")
print("SENSORBOX-TEST PASS")
`);
  process.stdout.write(out);
} catch (e) {
  process.stdout.write(out);
  process.stdout.write(String(e.message || e) + "\n");
  process.exit(1);
}
