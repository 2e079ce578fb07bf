import onnxProto from 'onnx-proto';
import { modelError } from '../util/errors.js';

const { onnx } = onnxProto;

/**
 * Classifier exports on the Hub (`…ForImageClassification`) output only `logits`; the features a
 * head should learn from are what the classification layer consumes. This finds that tensor — the
 * data input of the Gemm, or of the MatMul(+Add) that produces the logits — and returns the graph
 * with it added as an output, so the backbone can be used without knowing node names.
 */
export function exposeClassifierInput(modelBytes: Uint8Array, logitsName: string, origin: string): { model: Uint8Array; output: string } {
  const model = onnx.ModelProto.decode(modelBytes);
  const graph = model.graph;
  if (!graph) throw modelError('the ONNX file has no graph', origin);
  const producer = new Map<string, onnxProto.onnx.INodeProto>();
  for (const node of graph.node ?? []) for (const out of node.output ?? []) producer.set(out, node);
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));

  let name = logitsName;
  for (let hops = 0; hops < 4; hops++) {
    const node = producer.get(name);
    if (!node) break;
    const dataInputs = (node.input ?? []).filter((input) => !initializers.has(input));
    if (node.opType === 'Gemm' || node.opType === 'MatMul') {
      const features = dataInputs[0];
      if (!features) break;
      graph.output!.push(onnx.ValueInfoProto.create({ name: features, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
      return { model: onnx.ModelProto.encode(model).finish(), output: features };
    }
    // Walk back through what may follow the classifier: a bias Add, an Identity, a Reshape of the logits.
    if (!['Add', 'Identity', 'Reshape', 'Flatten', 'Squeeze'].includes(node.opType ?? '') || dataInputs.length !== 1) break;
    name = dataInputs[0]!;
  }
  throw modelError(
    `the graph's only output "${logitsName}" is not produced by a classification layer (Gemm/MatMul); name the feature tensor with --feature-output`,
    origin,
  );
}
