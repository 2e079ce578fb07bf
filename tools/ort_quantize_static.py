"""onnxruntime's own static quantisation of a headstart export: the anchor bench/quantize.ts compares with.

    python tools/ort_quantize_static.py <fp32.onnx> <calibration.bin> <count> <out.onnx>

calibration.bin holds `count` inputs of the export's single input (uint8 NHWC pixels), back to back,
exactly the photos headstart calibrates on. QDQ format, per-channel int8 weights, uint8 activations
(onnxruntime's recommendation for x86 with VNNI), MinMax calibration: quantize_static's defaults
apart from per_channel, which the issue asks for.
"""
import sys

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, name, batches):
        self.items = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self.items, None)


def main():
    source, calibration, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    model = onnx.load(source)
    inp = model.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
    data = np.fromfile(calibration, dtype=np.uint8).reshape([count, *dims])
    # onnxruntime's documented pre-processing step (shape inference + graph optimisation) first.
    prepared = out + '.pre.onnx'
    quant_pre_process(source, prepared)
    quantize_static(
        prepared,
        out,
        Reader(inp.name, [data[i : i + 1] for i in range(count)]),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


if __name__ == '__main__':
    main()
