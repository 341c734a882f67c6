"""Prompt mode: reflective prompt search (GEPA), demonstration sets, and one optimization run end to
end. Nothing is imported here, so importing one module loads only what it needs."""
