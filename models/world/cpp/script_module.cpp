// Builds a TorchScript module from named parameters and TorchScript source, and saves it.
//
// Tracing a Rust closure (tch's CModule::create_by_tracing) bakes the weights in as graph constants, so the saved
// module has no named parameters. The generator's consumers read its first layer by name (SeFa), so the generator is
// assembled here instead: parameters registered under their dotted names ("fc.weight" lives in submodule "fc") and
// `forward` compiled from source.
#include <torch/script.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

extern "C" int subspace_world_script_module(const char *class_name, const char *source, int n,
                                            const char **names, torch::Tensor **params, const char *path,
                                            char *err, size_t err_len) {
  try {
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    std::string root_name = std::string("__torch__.") + class_name;
    torch::jit::Module root(root_name, cu, /*shouldMangle=*/false);
    // Group parameters by submodule (one level of nesting, as in "fc.weight").
    std::vector<std::string> order;
    std::map<std::string, std::vector<std::pair<std::string, torch::Tensor>>> subs;
    for (int i = 0; i < n; ++i) {
      std::string full(names[i]);
      auto dot = full.find('.');
      torch::Tensor t = params[i]->detach().clone().contiguous();
      if (dot == std::string::npos) {
        root.register_parameter(full, t, /*is_buffer=*/false);
        continue;
      }
      std::string sub = full.substr(0, dot);
      if (!subs.count(sub)) order.push_back(sub);
      subs[sub].emplace_back(full.substr(dot + 1), t);
    }
    for (const auto &sub : order) {
      torch::jit::Module m(root_name + "_" + sub, cu, /*shouldMangle=*/false);
      for (const auto &p : subs[sub]) m.register_parameter(p.first, p.second, /*is_buffer=*/false);
      root.register_module(sub, m);
    }
    root.define(source);
    root.eval();
    root.save(path);
    return 0;
  } catch (const std::exception &e) {
    if (err_len > 0) {
      std::strncpy(err, e.what(), err_len - 1);
      err[err_len - 1] = 0;
    }
    return 1;
  }
}
