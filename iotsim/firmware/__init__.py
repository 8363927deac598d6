"""Reference firmware: TFLite int8 model -> C sources -> Cortex-M ELF -> emulator -> measured cost.

Modules, in the order data flows through them:
    quant     TFLite Micro's float -> fixed-point parameter arithmetic (QuantizeMultiplier, ...)
    lower     one TFLite op -> a C kernel call with its constant parameters (the op registry)
    export    a whole .tflite -> C sources (weights in flash, static plan, planned arena) + report
    build     host and arm-none-eabi builds of an exported model with firmware_ref/
    qemu      run an ELF on QEMU's mps2 boards with semihosting; count instructions (TCG plugin)
    renode    Renode platform script + Robot test generation and runner (when Renode exists)
    verify    firmware vs TFLite Micro vs LiteRT reference kernels on N vectors -> JSON report
    cost      measured instructions per inference, cached per (model, core), for the engine
"""
