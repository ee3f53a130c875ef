// Loading credentials for the Kubernetes API: the pod's in-cluster service account, or a kubeconfig
// file (development and tests). Every Weft component that talks to the API server starts here.
import { KubeConfig } from '@kubernetes/client-node';
import { WeftError, errorMessage } from '../errors.js';

/**
 * The in-cluster config when `kubeconfigPath` is undefined, else that file. `user` names the caller in
 * errors (`kubernetes:/path/kubeconfig`, `the CA`). Throws ERR_CONFIG_INVALID with the reason.
 */
export function loadKubeConfig(kubeconfigPath: string | undefined, user: string): KubeConfig {
  const config = new KubeConfig();
  try {
    if (kubeconfigPath === undefined) config.loadFromCluster();
    else config.loadFromFile(kubeconfigPath);
  } catch (err) {
    throw new WeftError(
      'ERR_CONFIG_INVALID',
      `${user}: cannot load ${kubeconfigPath === undefined ? 'the in-cluster config' : `the kubeconfig ${kubeconfigPath}`}: ${errorMessage(err)}`,
      { field: 'kubeconfig' },
      err,
    );
  }
  if (config.getCurrentCluster() === null)
    throw new WeftError('ERR_CONFIG_INVALID', `${user}: the kubeconfig names no current cluster`, {
      field: 'kubeconfig',
    });
  return config;
}
