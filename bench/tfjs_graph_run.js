// Runs a TF.js graph model (model.json + weights) on N raw float32 inputs, for
// bench/bench_person_ensemble.py (issue 13). Needs @tensorflow/tfjs-core, -converter and
// -backend-wasm (4.22.0) installed by npm somewhere NODE_PATH points at; nothing is downloaded.
//   node bench/tfjs_graph_run.js MODEL_DIR NAME INPUT.bin N D1 D2 D3 OUT.bin
// OUT.bin: the outputs of each input in turn (the signature's order, or OUTPUTS=a,b), float32;
// OUT.bin.json: their shapes and the milliseconds per input.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const converter = require('@tensorflow/tfjs-converter');

async function main() {
  const [dir, name, input, n, d1, d2, d3, out] = process.argv.slice(2);
  wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
  await tf.setBackend('wasm');
  const spec = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`)));
  const manifest = spec.weightsManifest[0];
  const weights = fs.readFileSync(path.join(dir, manifest.paths[0]));
  const model = await converter.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: spec.modelTopology,
      weightSpecs: manifest.weights,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length),
      format: spec.format,
    }),
  );
  const names = (process.env.OUTPUTS ? process.env.OUTPUTS.split(',') : Object.keys(spec.signature.outputs))
    .map((o) => o.replace(/:0$/, ''));
  const raw = fs.readFileSync(input);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const size = +d1 * +d2 * +d3;
  const chunks = [];
  const shapes = [];
  const started = Date.now();
  for (let i = 0; i < +n; i++) {
    const x = tf.tensor(data.subarray(i * size, (i + 1) * size), [1, +d1, +d2, +d3]);
    let result = model.execute(x, names);
    if (!Array.isArray(result)) result = [result];
    for (const tensor of result) {
      const values = await tensor.data();
      chunks.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      if (i === 0) shapes.push({ name: names[shapes.length], shape: tensor.shape });
      tensor.dispose();
    }
    x.dispose();
  }
  fs.writeFileSync(out, Buffer.concat(chunks));
  const summary = { outputs: shapes, ms_per_frame: (Date.now() - started) / +n };
  fs.writeFileSync(`${out}.json`, JSON.stringify(summary));
  console.log(JSON.stringify(summary));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
