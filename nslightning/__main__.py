"""``python -m nslightning`` is the ``nslightning`` command."""

from nslightning.cli import main

if __name__ == "__main__":
    main()
