package io.github.edgebackbones.core

/**
 * Every error :core raises. Like the Python package's typed errors, a message
 * names the problem, the value received and the fix.
 */
open class EdgeBackbonesException(message: String, cause: Throwable? = null) :
    RuntimeException(message, cause)

/** The sidecar JSON is missing a field, has a wrong type or an unsupported value. */
open class MetadataException(message: String) : EdgeBackbonesException(message)

/**
 * The sidecar breaks `artifact.schema.json`: [field] is the JSON path of the
 * first problem (`$.outputs.P1.dtype`), [schemaVersion] the schema file's version.
 */
class ArtifactSchemaException(message: String, val field: String, val schemaVersion: Int) :
    MetadataException(message)

/**
 * A valid artifact whose tensor LiteRT's Kotlin `TensorBuffer` cannot read or
 * write (it has float32, int8 and int32 access, no int16 or float16): the app
 * says so for that artifact instead of refusing its metadata.
 */
class UnbindableTensorException(val problem: BindingProblem) : EdgeBackbonesException(problem.message)

/** Pixels, tensors or settings that do not fit the model. */
class InputException(message: String) : EdgeBackbonesException(message)

/** A promptable model was asked for masks before it was given an image (SamPredictor's ImageNotSetError). */
class ImageNotSetException(message: String) : EdgeBackbonesException(message)

/** No accelerator in the requested order could open and run the model. */
class AcceleratorUnavailableException(
    message: String,
    val attempts: List<Attempt>,
) : EdgeBackbonesException(message)
