package io.github.edgebackbones.demo

import android.content.Context
import com.google.ai.edge.litert.BuiltinNpuAcceleratorProvider
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.Environment
import com.google.ai.edge.litert.TensorBuffer
import io.github.edgebackbones.core.Accelerator
import io.github.edgebackbones.core.BackendFactory
import io.github.edgebackbones.core.CompiledBackend
import io.github.edgebackbones.core.DType
import io.github.edgebackbones.core.ModelMetadata
import io.github.edgebackbones.core.RawTensor
import io.github.edgebackbones.core.SIGNATURE_KEY
import com.google.ai.edge.litert.Accelerator as LiteRtAccelerator

/**
 * The only LiteRT code of the app: one CompiledModel on one accelerator,
 * inputs and outputs bound by their SignatureDef names (never by index).
 */
class LiteRtBackend(
    private val model: CompiledModel,
    private val environment: Environment?,
    private val metadata: ModelMetadata,
) : CompiledBackend {
    private val inputs: Map<String, TensorBuffer> =
        mapOf(metadata.input.name to model.createInputBuffer(metadata.input.name, SIGNATURE_KEY))
    private val outputs: Map<String, TensorBuffer> =
        metadata.levels.associate { it.name to model.createOutputBuffer(it.name, SIGNATURE_KEY) }

    override fun run(input: RawTensor): Map<String, RawTensor> {
        val buffer = inputs.getValue(metadata.input.name)
        when (input) {
            is RawTensor.Floats -> buffer.writeFloat(input.values)
            // int8 and uint8 alike: the bytes :core quantized
            is RawTensor.Bytes -> buffer.writeInt8(input.values)
        }
        model.run(inputs, outputs, SIGNATURE_KEY)
        return metadata.levels.associate { level ->
            val out = outputs.getValue(level.name)
            level.name to if (level.dtype == DType.FLOAT32) RawTensor.Floats(out.readFloat())
            else RawTensor.Bytes(out.readInt8())
        }
    }

    override fun close() {
        (inputs.values + outputs.values).forEach { it.close() }
        model.close()
        environment?.close()
    }
}

/**
 * Creates a CompiledModel for exactly one accelerator per call, so that
 * [io.github.edgebackbones.core.AcceleratorFallback] decides the order and
 * knows what ran: `Options(GPU, CPU)` would let LiteRT move to the CPU
 * without saying so. (LiteRT itself adds CPU to an NPU-only request, for the
 * ops an NPU compiler leaves; the app labels such a run "NPU".)
 */
class LiteRtFactory(
    private val context: Context,
    private val asset: String,
    private val metadata: ModelMetadata,
) : BackendFactory {
    override fun open(accelerator: Accelerator, numThreads: Int): CompiledBackend {
        val environment = if (accelerator == Accelerator.NPU) {
            Environment.create(BuiltinNpuAcceleratorProvider(context))
        } else {
            null
        }
        try {
            val options = CompiledModel.Options(liteRt(accelerator)).apply {
                cpuOptions = CompiledModel.CpuOptions(numThreads = numThreads)
            }
            val model = CompiledModel.create(context.assets, asset, options, environment)
            return LiteRtBackend(model, environment, metadata)
        } catch (e: Exception) {
            environment?.close()
            throw e
        }
    }

    private fun liteRt(accelerator: Accelerator) = when (accelerator) {
        Accelerator.NPU -> LiteRtAccelerator.NPU
        Accelerator.GPU -> LiteRtAccelerator.GPU
        Accelerator.CPU -> LiteRtAccelerator.CPU
    }
}
