{
  "targets": [
    {
      "target_name": "weft_ebpf",
      "sources": ["src/addon.c", "src/sockets.c", "src/maps.c", "src/loader.c"],
      "include_dirs": ["../bpf"],
      "libraries": ["-lbpf", "-lelf", "-lz"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
