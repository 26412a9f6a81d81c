package io.github.edgebackbones.core

/**
 * Every error :core raises. Like the Python package's typed errors, a message
 * names the problem, the value received and the fix.
 */
open class EdgeBackbonesException(message: String, cause: Throwable? = null) :
    RuntimeException(message, cause)

/** The sidecar JSON is missing a field, has a wrong type or an unsupported value. */
class MetadataException(message: String) : EdgeBackbonesException(message)

/** Pixels, tensors or settings that do not fit the model. */
class InputException(message: String) : EdgeBackbonesException(message)

/** No accelerator in the requested order could open and run the model. */
class AcceleratorUnavailableException(
    message: String,
    val attempts: List<Attempt>,
) : EdgeBackbonesException(message)
