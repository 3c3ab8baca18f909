"""Every ``srnas`` sub-command, one module each, listed in :data:`srnas.search.cli.COMMANDS`;
:mod:`.args` holds the argument helpers they share. Here, in search/, because it is the one
package that may compose all the others; modules import torch, Ray and pandas only in their
handlers."""
