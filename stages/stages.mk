# Stage plugins: one file each, installed to $(stagedir).
